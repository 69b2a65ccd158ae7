"""Assets and lineage of FTS transfers: every rule about a replica's identity, in one place.

**Asset identity.** A replica's asset is its destination URL *as the DAG author wrote it*,
without its query string (``?authz=...`` tokens and copy options are not identity, and a
token must never reach an asset, an event or a dataset) and without user info. SRM URLs
that carry the path in the query (``srm://se:8446/srm/managerv2?SFN=/path``) become
``srm://se:8446/path``. Airflow identifies an asset by name *and* URI: the normaliser
registered here (lower-case host, default port dropped, no query) changes only the URI, so
``Asset("davs://h:443/x")`` and ``Asset("davs://h/x")`` stay two assets for scheduling.
Schedule downstream DAGs on the destination spelled as the transfer spells it.

**The cap.** A task adds one asset event per FINISHED destination file, up to
:data:`MAX_ASSET_EVENTS`; beyond that the destinations collapse to their directories (one
event per directory, its ``extra`` counting files and bytes), climbing further up until
they fit. OpenLineage datasets follow the same rule with :data:`MAX_LINEAGE_DATASETS` per
side. So a 10,000-file job cannot flood the asset tables or make a lineage event of
megabytes.

Nothing here imports OpenLineage; :mod:`airflow_provider_fts.openlineage` does, and only
OpenLineage's own extractor loads it.
"""

from __future__ import annotations

import logging
import posixpath
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_fts.client.errors import is_job_error_entry

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Context

    from airflow_provider_fts.hooks.fts import FTSHook

log = logging.getLogger(__name__)

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
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


def normalize_uri(parts: SplitResult) -> SplitResult:
    """The ``asset-uris`` handler: lower-case host, default port dropped, no query."""
    scheme = parts.scheme.lower()
    if scheme == "srm" and parts.query:
        parts = urllib.parse.urlsplit(asset_uri(urllib.parse.urlunsplit(parts)))
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"A {scheme}:// asset URI needs a host, e.g. {scheme}://se.example/path")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return parts._replace(scheme=scheme, netloc=host, query="", fragment="")


def namespace_and_name(url: str) -> tuple[str, str]:
    """OpenLineage naming of a storage URL: ``(<scheme>://<host>[:<port>], <path>)``."""
    parts = normalize_uri(urllib.parse.urlsplit(asset_uri(url)))
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/"


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """The ``asset-uris`` OpenLineage converter (called by the OpenLineage provider only)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    namespace, name = namespace_and_name(asset.uri)
    return Dataset(namespace=namespace, name=name)


def collapse(urls: Iterable[str], limit: int) -> dict[str, list[str]]:
    """Group URLs under at most ``limit`` keys: each URL its own key when they fit, else
    their parent directories, climbing one level at a time. Order is kept."""
    groups: dict[str, list[str]] = {url: [url] for url in dict.fromkeys(urls)}
    while len(groups) > limit:
        parents: dict[str, list[str]] = defaultdict(list)
        for key, members in groups.items():
            parents[_parent(key)].extend(members)
        if parents.keys() == groups.keys():  # at the hosts already: nothing left to climb
            return dict(list(groups.items())[:limit])
        groups = dict(parents)
    return groups


def _parent(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    parent = posixpath.dirname(parts.path.rstrip("/")) or "/"
    return urllib.parse.urlunsplit(parts._replace(path=parent))


def report_submitted(hook: FTSHook, transfers: Sequence[Any]) -> None:
    """Airflow's hook-level lineage of a submission: sources in, destinations out.

    Read by OpenLineage when the task's own facets have no datasets; a no-op otherwise.
    """
    from airflow.sdk.lineage import MAX_COLLECTED_ASSETS, get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    for transfer in transfers[:MAX_COLLECTED_ASSETS]:  # the collector keeps no more
        for source in transfer.sources:
            collector.add_input_asset(context=hook, uri=asset_uri(source))
        for destination in transfer.destinations:
            collector.add_output_asset(context=hook, uri=asset_uri(destination))


# -- what moved ------------------------------------------------------------------------


def fetch_jobs(hook: FTSHook, job_ids: Sequence[str]) -> list[dict]:
    """The job records with the summary's file fields (source, destination, state, size,
    checksum); one request per 100 jobs."""
    records = hook.get_jobs_or_archived(list(job_ids), files=True)
    return [record for record in records if not is_job_error_entry(record)]


def files_of(jobs: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Every file record of the jobs, each with its ``job_id``."""
    return [{**f, "job_id": job.get("job_id")} for job in jobs for f in job.get("files") or []]


def finished(files: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [f for f in files if f.get("file_state") == "FINISHED" and f.get("dest_surl")]


def replica_events(
    files: Iterable[Mapping[str, Any]], grain: str = "file"
) -> list[tuple[str, dict[str, Any]]]:
    """``(asset URI, extra)`` for each FINISHED destination (``grain="file"``) or each
    directory holding some (``"directory"``: its ``extra`` counts files and bytes), capped
    by :data:`MAX_ASSET_EVENTS` (then one event per directory, climbing up)."""
    by_uri = {asset_uri(f["dest_surl"]): f for f in finished(files)}
    if grain == "file":
        groups = collapse(by_uri, MAX_ASSET_EVENTS)
    else:
        directories: dict[str, list[str]] = defaultdict(list)
        for uri in by_uri:
            directories[_parent(uri)].append(uri)
        groups = {
            key: [uri for directory in members for uri in directories[directory]]
            for key, members in collapse(directories, MAX_ASSET_EVENTS).items()
        }
    events = []
    for key, members in groups.items():
        if members == [key]:
            events.append((key, _file_extra(by_uri[key])))
        else:
            events.append((key, _directory_extra([by_uri[m] for m in members])))
    return events


def _file_extra(record: Mapping[str, Any]) -> dict[str, Any]:
    extra = {"fts_job_id": record["job_id"], "source": asset_uri(record.get("source_surl") or "")}
    size = record.get("filesize") or record.get("user_filesize")
    if size:
        extra["size"] = int(size)
    if ":" in str(record.get("checksum") or ""):  # "ADLER32" alone names no value
        extra["checksum"] = record["checksum"]
    return extra


def _directory_extra(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    job_ids = sorted({r["job_id"] for r in records})
    extra: dict[str, Any] = {"fts_job_ids": job_ids} | (
        {"fts_job_id": job_ids[0]} if len(job_ids) == 1 else {}
    )
    sizes = (int(r.get("filesize") or r.get("user_filesize") or 0) for r in records)
    return extra | {"files": len(records), "bytes": sum(sizes)}


def asset_aliases(task: Any) -> list[Any]:
    """The ``AssetAlias`` outlets of a task."""
    from airflow.sdk import AssetAlias

    return [
        outlet for outlet in getattr(task, "outlets", None) or [] if isinstance(outlet, AssetAlias)
    ]


def add_replica_events(task: Any, context: Context, job_ids: Sequence[str]) -> int:
    """Add an asset event per FINISHED destination to every ``AssetAlias`` in the task's
    outlets; return how many events each alias got.

    Call it on success in the task's final execution segment (events added before
    ``defer()`` are lost). Without an alias it does nothing, not even a request.

    :param task: The operator or sensor (its ``outlets`` and ``hook``).
    :param context: The task's context (its ``outlet_events``).
    :param job_ids: The FTS jobs whose FINISHED files are announced.
    """
    task._fts_job_ids = list(job_ids)
    aliases = asset_aliases(task)
    if not aliases:
        return 0
    from airflow.sdk import Asset

    jobs = fetch_jobs(task.hook, job_ids)
    remember_jobs(task, job_ids, jobs)
    events = []
    for uri, extra in replica_events(files_of(jobs), getattr(task, "asset_grain", "file")):
        try:
            events.append((Asset(uri), extra))
        except ValueError as error:  # the copy succeeded: an odd URL must not fail the task
            log.warning("No asset event for %s: %s", uri, error)
    for alias in aliases:
        for asset, extra in events:
            context["outlet_events"][alias].add(asset, extra=extra)
    return len(events)


def prepare_lineage(task: Any, job_ids: Sequence[str]) -> None:
    """In a final segment that resumes from a trigger, before the verdict: keep the job ids
    on the task and load its connection. OpenLineage's listener then finds both on the task
    (it runs in a forked process, which must not ask the task supervisor for anything).

    :param task: The operator or sensor.
    :param job_ids: The FTS jobs of the task.
    """
    task._fts_job_ids = list(job_ids)
    try:
        task.hook.settings  # noqa: B018 (loads and caches the connection)
    except Exception:  # a broken connection is not lineage's to report
        log.debug("FTS lineage: connection %s not loaded", task.hook.fts_conn_id, exc_info=True)


def remember_jobs(task: Any, job_ids: Sequence[str], jobs: list[dict]) -> None:
    """Keep fetched job records on the task, so its lineage needs no second request."""
    task._fts_jobs = (tuple(job_ids), jobs)


def remembered_jobs(task: Any, job_ids: Sequence[str]) -> list[dict] | None:
    cached = getattr(task, "_fts_jobs", None)
    return cached[1] if cached and cached[0] == tuple(job_ids) else None


class ReplicaLineage:
    """OpenLineage's three hooks for the operator and the sensor, which mix this in.

    OpenLineage's extractor finds them by name; the facets are built in
    :mod:`airflow_provider_fts.openlineage`, imported only when OpenLineage asks.
    """

    def get_openlineage_facets_on_start(self) -> Any:
        from airflow_provider_fts.openlineage import facets_on_start

        return facets_on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_fts.openlineage import facets_on_complete

        return facets_on_complete(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_provider_fts.openlineage import facets_on_failure

        return facets_on_failure(self, task_instance)
