"""The rules of a replica's identity, with no Airflow: asset URIs, collapsing, grid schemes.

**Asset identity.** A replica's asset is its destination URL *as the DAG author wrote it*,
without its query string (``?authz=...`` tokens and copy options are not identity, and a
token must never reach an asset, an event or a dataset) and without user info. SRM URLs
that carry the path in the query (``srm://se:8446/srm/managerv2?SFN=/path``) become
``srm://se:8446/path``. Airflow identifies an asset by name *and* URI: the normaliser
registered for the grid schemes (lower-case host, default port dropped, no query) changes
only the URI, so ``Asset("davs://h:443/x")`` and ``Asset("davs://h/x")`` stay two assets
for scheduling. Schedule downstream DAGs on the destination spelled as the transfer spells it.

**The cap.** A task adds one asset event per FINISHED destination file, up to
:data:`MAX_ASSET_EVENTS`; beyond that the destinations collapse to their directories (one
event per directory, its ``extra`` counting files and bytes), climbing further up until
they fit. OpenLineage datasets follow the same rule with :data:`MAX_LINEAGE_DATASETS` per
side. So a 10,000-file job cannot flood the asset tables or make a lineage event of
megabytes.

The hook (its submission lineage), :mod:`airflow_provider_fts.assets` (asset events) and
:mod:`airflow_provider_fts.openlineage` (facets) all read these rules.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_fts.client.states import file_bytes, is_finished_replica
from airflow_provider_fts.client.urls import netloc

#: Default ports of the storage schemes FTS copies between (dropped from normalised URIs).
DEFAULT_PORTS: dict[str, int | None] = {
    "davs": 443,
    "https": 443,
    "root": 1094,
    "gsiftp": 2811,
    "srm": 8443,
    "s3": None,
}
#: The schemes this provider registers in ``asset-uris``: the grid's own. A normaliser
#: applies to every asset of its scheme in the deployment, so ``https`` and ``s3`` (other
#: teams' assets, other providers' schemes) are left alone: an ``https`` destination's
#: asset URI is :func:`asset_uri` of it, which Airflow keeps as given.
GRID_SCHEMES: tuple[str, ...] = ("davs", "root", "gsiftp", "srm")
#: Per-file asset events a task adds at most; more collapse into directory events.
MAX_ASSET_EVENTS = 1000
#: What one asset is (a task's ``asset_grain``): each replica, or each destination directory.
ASSET_GRAINS = ("file", "directory")
#: Per-file OpenLineage datasets per side (inputs, outputs) at most; more become directories.
MAX_LINEAGE_DATASETS = 100


def asset_uri(url: str) -> str:
    """The asset URI of a storage URL: as given, minus query, fragment and user info."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    if parts.scheme.lower() == "srm" and parts.query:
        sfn = urllib.parse.parse_qs(parts.query).get("SFN")
        path = sfn[0] if sfn else path
    netloc_ = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc_, path, "", ""))


def normalize_uri(parts: urllib.parse.SplitResult) -> urllib.parse.SplitResult:
    """The ``asset-uris`` handler: lower-case host, default port dropped, no query."""
    scheme = parts.scheme.lower()
    if scheme == "srm" and parts.query:
        parts = urllib.parse.urlsplit(asset_uri(urllib.parse.urlunsplit(parts)))
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"A {scheme}:// asset URI needs a host, e.g. {scheme}://se.example/path")
    port = parts.port
    location = netloc(host, None if port == DEFAULT_PORTS.get(scheme) else port)
    return parts._replace(scheme=scheme, netloc=location, query="", fragment="")


def namespace_and_name(url: str) -> tuple[str, str]:
    """OpenLineage naming of a storage URL: ``(<scheme>://<host>[:<port>], <path>)``."""
    parts = normalize_uri(urllib.parse.urlsplit(asset_uri(url)))
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/"


class Collapsed:
    """URLs grouped under at most ``limit`` keys as they stream in, in bounded memory: each
    URL its own key while they fit, else their parent directories, climbing one level at a
    time. Order is kept. At the hosts, where nothing is left to climb, the first ``limit``
    keys stay and later ones are dropped.

    Each group counts its URLs, their bytes and their jobs; a group of one URL at depth 0
    keeps that URL's file record (for its own event).

    :param limit: Keys at most.
    :param depth: Directory levels to climb from the start (1: one key per directory).
    """

    def __init__(self, limit: int, *, depth: int = 0) -> None:
        self.limit = limit
        self.depth = depth
        self.groups: dict[str, _Group] = {}
        self._at_hosts = False

    def add(self, url: str, record: Mapping[str, Any] | None = None) -> None:
        key = url
        for _ in range(self.depth):
            key = parent(key)
        group = self.groups.get(key)
        if group is None:
            if self._at_hosts:
                return
            group = self.groups[key] = _Group(record if self.depth == 0 else None)
        elif self.depth == 0:
            return  # the same destination twice: one replica
        group.count(record)
        if len(self.groups) > self.limit:
            self._climb()

    def _climb(self) -> None:
        while len(self.groups) > self.limit:
            parents: dict[str, _Group] = {}
            for key, group in self.groups.items():
                parents.setdefault(parent(key), _Group(None)).merge(group)
            if parents.keys() == self.groups.keys():
                self.groups = dict(list(self.groups.items())[: self.limit])
                self._at_hosts = True
                return
            self.groups = parents
            self.depth += 1


class _Group:
    def __init__(self, record: Mapping[str, Any] | None) -> None:
        self.record = record
        self.files = 0
        self.bytes = 0
        self.job_ids: set[str] = set()

    def count(self, record: Mapping[str, Any] | None) -> None:
        self.files += 1
        if record is not None:
            self.bytes += file_bytes(record)
            self.job_ids.add(record["job_id"])

    def merge(self, other: _Group) -> None:
        self.files += other.files
        self.bytes += other.bytes
        self.job_ids |= other.job_ids


def collapse(urls: Iterable[str], limit: int) -> dict[str, int]:
    """The keys of :class:`Collapsed` for ``urls``, each with how many URLs it stands for."""
    collapsed = Collapsed(limit)
    for url in urls:
        collapsed.add(url)
    return {key: group.files for key, group in collapsed.groups.items()}


def parent(url: str) -> str:
    """The directory of a URL (``/`` at the top)."""
    parts = urllib.parse.urlsplit(url)
    directory = posixpath.dirname(parts.path.rstrip("/")) or "/"
    return urllib.parse.urlunsplit(parts._replace(path=directory))


def replica_events(
    files: Iterable[Mapping[str, Any]], grain: str = "file"
) -> list[tuple[str, dict[str, Any]]]:
    """``(asset URI, extra)`` for each FINISHED destination (``grain="file"``) or each
    directory holding some (``"directory"``: its ``extra`` counts files and bytes), capped
    by :data:`MAX_ASSET_EVENTS` (then one event per directory, climbing up). ``files`` may
    be a stream: memory holds the events, not the files.

    :param files: File records, each with its ``job_id``.
    :param grain: One of :data:`ASSET_GRAINS`.
    """
    collapsed = Collapsed(MAX_ASSET_EVENTS, depth=0 if grain == "file" else 1)
    for file in files:
        if is_finished_replica(file):
            collapsed.add(asset_uri(file["dest_surl"]), file)
    return [
        (key, _file_extra(group.record) if group.record else _directory_extra(group))
        for key, group in collapsed.groups.items()
    ]


def _file_extra(record: Mapping[str, Any]) -> dict[str, Any]:
    extra = {"fts_job_id": record["job_id"], "source": asset_uri(record.get("source_surl") or "")}
    size = file_bytes(record)
    if size:
        extra["size"] = size
    if ":" in str(record.get("checksum") or ""):  # "ADLER32" alone names no value
        extra["checksum"] = record["checksum"]
    return extra


def _directory_extra(group: _Group) -> dict[str, Any]:
    job_ids = sorted(group.job_ids)
    extra: dict[str, Any] = {"fts_job_ids": job_ids} | (
        {"fts_job_id": job_ids[0]} if len(job_ids) == 1 else {}
    )
    return extra | {"files": group.files, "bytes": group.bytes}
