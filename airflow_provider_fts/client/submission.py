"""The job submission document (``POST /jobs``), validated before anything is sent.

FTS checks little and silently accepts much that is wrong: ``verify_checksum="bogus"`` is
stored as ``b``, priority 10 becomes 5, ``max_time_in_queue=2`` means two *hours*, a
negative file size is kept. So everything is checked here, and a DAG fails at once with
the field and the fix instead of hours later on the server. Every problem raises
:class:`FTSValidationError` naming the place, e.g. ``transfers[3].sources[0]`` or
``job_params.max_time_in_queue``; the first problem found is raised.

:func:`build_submission` is the one entry point. The rules of one file live in
``transfer.py`` (URLs in ``urls.py``), those of the job parameters in ``jobparams.py``;
here are the rules between transfers and the metadata sizes. Only keys that are set are
sent: the server merges its own defaults.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from json.encoder import c_make_encoder as _c_make_encoder
from json.encoder import encode_basestring_ascii
from typing import Any

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.jobparams import JobParams
from airflow_provider_fts.client.transfer import Transfer, transfer_entry
from airflow_provider_fts.client.urls import shown, storage

__all__ = [
    "BASE_ID",
    "FTSValidationError",
    "JobParams",
    "MetadataLimits",
    "Transfer",
    "build_submission",
    "expected_job_id",
    "vo_id",
]

#: Namespace of deterministic job ids (the server's ``BASE_ID``, also in ``/whoami``).
BASE_ID = "01874efb-4735-4595-bc9c-591aef8240c9"

#: Tape REST API endpoints, the only ones 3.13 servers accept with overwrite_when_only_on_disk.
OVERWRITE_ON_DISK_SCHEMES = frozenset({"https", "davs"})


def vo_id(vo: str, base_id: str = BASE_ID) -> uuid.UUID:
    """A VO's id namespace, as FTS derives it: ``uuid5(base_id, vo)`` (``/whoami``'s ``vos_id``)."""
    return uuid.uuid5(uuid.UUID(base_id), vo)


def expected_job_id(vo: str, sid: str, base_id: str = BASE_ID) -> str:
    """The id FTS gives a job submitted with ``id_generator="deterministic"`` and ``sid``.

    ``uuid5(uuid5(base_id, vo), sid)``, where ``vo`` is the first VO of ``/whoami`` (for a
    proxy without VOMS attributes, FTS uses the delegation id as VO).

    :param vo: the submitter's first VO.
    :param sid: the submission id sent with the job.
    :param base_id: the server's id namespace.
    """
    for name, value in (("vo", vo), ("sid", sid)):
        if not isinstance(value, str) or not value:
            raise FTSValidationError(
                name, f"must be a non-empty string, not {value!r}.", f"Pass the {name} as a str."
            )
    return str(uuid.uuid5(vo_id(vo, base_id), sid))


@dataclass(frozen=True)
class MetadataLimits:
    """Metadata size limits (bytes of JSON) of the server; 0 means unlimited.

    Defaults are the server's code defaults; FTS configs often raise them (the shipped
    config has 2048 for jobs and 4096 for files), so pass your server's values.
    """

    job: int = 1024  # JobMetadataSizeLimit
    file: int = 1024  # FileMetadataSizeLimit
    staging: int = 1024  # StagingMetadataSizeLimit
    archive: int = 1024  # ArchiveMetadataSizeLimit


def build_submission(
    transfers: Iterable[Transfer | Mapping[str, Any] | tuple],
    *,
    metadata_limits: MetadataLimits = MetadataLimits(),  # frozen: safe as a default
    **job_params: Any,
) -> dict[str, Any]:
    """The ``POST /jobs`` document ``{"files": [...], "params": {...}}``, ready for JSON.

    Everything is validated first: each transfer, each parameter, the rules between
    them (multihop, multiple replicas, reuse, overwrite flags, tokens) and the metadata
    sizes. ``params`` is always present, even empty: 3.13 servers answer a token
    submission without it with a 500.

    :param transfers: dicts, ``(source, destination)`` pairs or :class:`Transfer` objects.
    :param metadata_limits: the server's metadata size limits.
    :param job_params: the job parameters, as the fields of :class:`JobParams`.
    """
    if isinstance(transfers, (str, Mapping, Transfer)):
        raise FTSValidationError(
            "transfers",
            f"is a single {type(transfers).__name__}, not a list of transfers.",
            "Wrap it in a list: [transfer].",
        )
    params = JobParams.from_mapping(job_params)
    files = [transfer_entry(transfer, index) for index, transfer in enumerate(transfers)]
    if not files:
        raise FTSValidationError(
            "transfers", "is empty; a job needs at least one transfer.", "Give the transfers."
        )
    _check_job_shape(files, params)
    _check_file_metadata_sizes(files, metadata_limits)
    if params.job_metadata is not None:
        _check_size(
            params.job_metadata,
            "job_params.job_metadata",
            metadata_limits.job,
            "JobMetadataSizeLimit",
        )
    return {"files": files, "params": params.to_json()}


# -- metadata sizes -------------------------------------------------------------------------


def _check_file_metadata_sizes(files: list[dict[str, Any]], limits: MetadataLimits) -> None:
    json_text = _json_encoder()
    for index, entry in enumerate(files):
        if len(entry) == 2:  # sources and destinations only
            continue
        try:
            metadata = entry.get("metadata")
            if metadata is not None:
                _check_size(metadata, "metadata", limits.file, "FileMetadataSizeLimit", json_text)
            for name, limit, setting in (
                ("staging_metadata", limits.staging, "StagingMetadataSizeLimit"),
                ("archive_metadata", limits.archive, "ArchiveMetadataSizeLimit"),
            ):
                if name in entry:  # tape metadata, rare: one membership test each
                    _check_size(entry[name], name, limit, setting, json_text)
        except FTSValidationError as error:
            # Named only on error: a name for each of 10,000 files would cost more than
            # the check itself.
            raise FTSValidationError(
                f"transfers[{index}].{error.field}", error.problem, error.fix
            ) from None


def _check_size(
    value: dict | str,
    where: str,
    limit: int,
    setting: str,
    json_text: Callable[[object], str] = json.dumps,
) -> None:
    """Metadata within the server's limit, or an error naming the field and the setting.

    Its size is that of ``json.dumps`` of the metadata as the server stores it (a str as a
    label); measuring it also proves it serialisable when there is no limit.

    :param value: the metadata.
    :param where: the field the error names.
    :param limit: the server's limit in bytes, 0 for none.
    :param setting: the name of the server's setting.
    :param json_text: ``json.dumps`` or the same text faster (:func:`_json_encoder`).
    """
    stored = {"label": value} if isinstance(value, str) else value
    try:
        size = len(json_text(stored))
    except (TypeError, ValueError) as exc:
        raise FTSValidationError(
            where,
            f"is not JSON-serialisable ({exc}).",
            "Use only dicts, lists, str, int, float, bool and None in metadata.",
        ) from None
    if limit and size > limit:
        raise FTSValidationError(
            where,
            f"is {size} bytes as JSON, over the server's {setting} of {limit} bytes.",
            f"Make it smaller, or if your server sets {setting} higher, pass "
            f"metadata_limits=MetadataLimits(...) with that value (0 = unlimited).",
        )


def _json_encoder() -> Callable[[object], str]:
    """A ``json.dumps`` (default arguments) for one submission, made for speed.

    json.dumps passes through three Python layers and builds a new C encoder for each
    call, which made half the cost of a submission's size checks. This is the same C
    encoder with the same settings, built once per submission; its circular-reference
    memory is its own (not shared between threads) and empty again after every success.
    """
    if _c_make_encoder is None:  # an interpreter without json's C speedups
        return json.dumps
    encode = _c_make_encoder(
        {}, _DEFAULT, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )

    def json_text(value: object) -> str:
        return "".join(encode(value, 0))

    return json_text


_DEFAULT = json.JSONEncoder().default  # raises TypeError "... is not JSON serializable"


# -- the rules between the transfers of a job ----------------------------------------------


def _check_job_shape(files: list[dict[str, Any]], params: JobParams) -> None:
    """The rules that span transfers, in the order FTS would meet them."""
    if params.multihop:
        _check_multihop(files)
    _check_replicas(files, params)
    if params.reuse:
        _check_reuse(files)
    if params.overwrite_when_only_on_disk:
        # Of a multihop job only the final destination is the tape endpoint.
        _check_tape_destinations(files, len(files) - 1 if params.multihop else 0)
    _check_tokens_everywhere_or_nowhere(files)
    _check_unique_destinations(files)


def _check_multihop(files: list[dict[str, Any]]) -> None:
    if len(files) < 2:
        raise FTSValidationError(
            "job_params.multihop",
            "needs at least two transfers (the hops, in order); there is one.",
            "Add the hops, or drop multihop.",
        )
    for index, entry in enumerate(files):
        for name in ("sources", "destinations"):
            if len(entry[name]) != 1:
                raise FTSValidationError(
                    f"transfers[{index}].{name}",
                    "must hold exactly one URL in a multihop job.",
                    "Give one source and one destination per hop.",
                )


def _check_replicas(files: list[dict[str, Any]], params: JobParams) -> None:
    for index, entry in enumerate(files):
        if len(entry["sources"]) == 1:
            continue
        where = f"transfers[{index}].sources"
        if params.multihop or params.reuse:
            raise FTSValidationError(
                where,
                "lists several replicas, which FTS refuses in multihop or reuse jobs.",
                "Give one source, or submit this transfer in its own job.",
            )
        if len(files) > 1:
            raise FTSValidationError(
                where,
                f"lists several replicas: such a transfer must be alone in its job, "
                f"and this job has {len(files)} transfers.",
                "Submit each multiple-replica transfer as its own job.",
            )


def _check_reuse(files: list[dict[str, Any]]) -> None:
    source, destination = storage(files[0]["sources"][0]), storage(files[0]["destinations"][0])
    for index, entry in enumerate(files):
        for name, expected in (("sources", source), ("destinations", destination)):
            for position, url in enumerate(entry[name]):
                if storage(url) != expected:
                    raise FTSValidationError(
                        f"transfers[{index}].{name}[{position}]",
                        f"is on {storage(url)}, but a reuse job must use one storage "
                        f"({expected}) on this side.",
                        "Split the job by storage, or drop reuse.",
                    )


def _check_tape_destinations(files: list[dict[str, Any]], first_index: int) -> None:
    for index in range(first_index, len(files)):
        for position, url in enumerate(files[index]["destinations"]):
            if url.partition(":")[0].lower() not in OVERWRITE_ON_DISK_SCHEMES:
                raise FTSValidationError(
                    f"transfers[{index}].destinations[{position}]",
                    f"{shown(url)} is not https:// or davs://, which "
                    "overwrite_when_only_on_disk needs (the Tape REST API).",
                    "Use the storage's https/davs endpoint, or drop the flag.",
                )


def _check_tokens_everywhere_or_nowhere(files: list[dict[str, Any]]) -> None:
    with_tokens = ["source_tokens" in entry for entry in files]
    if any(with_tokens) and not all(with_tokens):
        index = with_tokens.index(not with_tokens[0])
        raise FTSValidationError(
            f"transfers[{index}].source_tokens",
            "is given for some transfers of the job but not for others.",
            "Give tokens for every transfer, or for none.",
        )


def _check_unique_destinations(files: list[dict[str, Any]]) -> None:
    destinations = [url for entry in files for url in entry["destinations"]]
    if len(set(destinations)) == len(destinations):
        return
    seen: set[str] = set()
    for index, entry in enumerate(files):
        for position, url in enumerate(entry["destinations"]):
            if url in seen:
                raise FTSValidationError(
                    f"transfers[{index}].destinations[{position}]",
                    f"{shown(url)} is the destination of an earlier transfer of this job; "
                    "the copies would overwrite each other.",
                    "Remove the duplicate transfer.",
                )
            seen.add(url)
