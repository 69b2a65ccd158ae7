"""The server's job builder: a submitted document becomes a job row and its file rows.

Same steps in the same order as fts-rest-flask 3.13.4's ``JobBuilder`` (and its
``JobBuilder_utils``), so the same error wins when a document has several, with the same
messages (several are Python exception texts that leak through the server).
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any, Protocol
from urllib.parse import ParseResult, parse_qsl, urlencode, urlparse

from airflow_provider_fts.client.states import FileState, JobState
from airflow_provider_fts.client.submission import expected_job_id
from airflow_provider_fts.testing.identity import Identity
from airflow_provider_fts.testing.records import (
    FILE_KEYS,
    INTERNAL_ERROR,
    JOB_KEYS,
    HTTPError,
    StoredJob,
    iso,
)
from airflow_provider_fts.testing.token_table import TokenTable, hold_for_token_exchange

__all__ = ["JobBuilder", "JobNumbers", "refuse_token_tape_requests", "storage_element"]


class JobNumbers(Protocol):
    """What a builder asks of the store it builds for (:class:`~.store.JobStore`):
    numbers, limits, the base of job ids and the token table."""

    tokens: TokenTable
    #: The base of deterministic job ids (``/whoami``'s ``base_id``).
    base_id: str

    def allocate_file_id(self) -> int: ...

    def hashed_id(self) -> int: ...

    def metadata_limit(self, kind: str) -> int: ...


DEFAULT_PARAMS: dict[str, Any] = {
    "bring_online": -1,
    "verify_checksum": False,
    "copy_pin_lifetime": -1,
    "gridftp": "",
    "job_metadata": None,
    "overwrite": False,
    "overwrite_on_retry": False,
    "overwrite_when_only_on_disk": False,
    "overwrite_hop": False,
    "reuse": None,
    "multihop": False,
    "source_spacetoken": "",
    "retry": 0,
    "retry_delay": 0,
    "priority": 3,
    "max_time_in_queue": 0,
    "s3alternate": False,
    "dst_file_report": False,
    "archive_timeout": -1,
}

SELECTION_STRATEGIES = frozenset(
    {
        "auto", "queue", "orderly", "success", "throughput", "file-throughput",
        "pending-data", "waiting-time", "waiting-time-with-error", "duration",
    }
)  # fmt: skip


class JobBuilder:
    """The server's ``JobBuilder``: same steps in the same order, so the same errors win."""

    def __init__(self, store: JobNumbers, identity: Identity, submit_host: str, now: float):
        self.store = store
        self.identity = identity
        self.submit_host = submit_host
        self.now = now
        self.token_rows: dict[str, dict[str, Any]] = {}  # t_token rows, saved with the job

    def build(self, document: dict) -> StoredJob:
        self.store.tokens.check_bearer(self.identity)
        params = self._params(document.pop("params", {}))
        files_list = document.pop("files", None)
        if document.pop("delete", None) is not None:
            raise HTTPError(405, "Deletion jobs are no longer supported by FTS")
        if files_list is None:
            raise HTTPError(400, "No transfers operations specified")
        job_id, sid = self._job_id(params)
        record = self._job_record(job_id, params, files_list)
        bring_online = _is_staging(params)
        shared_hashed_id = (
            self.store.hashed_id() if record["job_type"] in ("H", "Y") or bring_online else None
        )
        files: list[dict] = []
        for index, file_dict in enumerate(files_list):
            files.extend(self._file_rows(file_dict, index, record, params, shared_hashed_id))
        if not files:
            raise HTTPError(400, "No valid pairs available")
        record["verify_checksum"] = _checksum_method(params["verify_checksum"], files)
        _set_job_storage(record, files)
        self._apply_job_type(record, files, params, bring_online)
        if self.token_rows:
            hold_for_token_exchange(files)
        vo = self.identity.vos[0]
        record.update(user_dn=self.identity.user_dn, cred_id=self.identity.delegation_id)
        record["vo_name"] = vo
        for row in files:
            row["vo_name"] = vo
            row["file_id"] = self.store.allocate_file_id()
        return StoredJob(record=record, files=files, sid=sid, submitted_at=self.now)

    def _params(self, submitted: Any) -> dict[str, Any]:
        params = dict(DEFAULT_PARAMS)
        params.update(submitted)
        for key, value in params.items():
            if value is None and key in DEFAULT_PARAMS:
                params[key] = DEFAULT_PARAMS[key]
        if params["job_metadata"] is not None:
            params["job_metadata"] = _metadata(
                params["job_metadata"], self.store.metadata_limit("job")
            )
        if params["job_metadata"] is not None and params["job_metadata"] != "None":
            params["job_metadata"].update({"auth_method": self.identity.method})
        else:
            params["job_metadata"] = {"auth_method": self.identity.method}
        return params

    def _job_id(self, params: dict[str, Any]) -> tuple[str, str | None]:
        if params.get("id_generator", "standard") != "deterministic":
            return str(uuid.uuid1()), None
        sid = params.get("sid")
        if sid is None:
            raise HTTPError(400, "Need sid for deterministic job id generation")
        _ = "sid: " + sid  # the server logs this way; a non-string sid fails right here
        return expected_job_id(self.identity.vos[0], str(sid), self.store.base_id), sid

    def _job_record(self, job_id: str, params: dict[str, Any], files_list: Any) -> dict[str, Any]:
        job_type = "H" if params["multihop"] else "Y" if _flag(params["reuse"]) else "N"
        expires = _seconds_from_value(params.get("max_time_in_queue"))
        overwrite_flag = _overwrite_flag(params, job_type, files_list)
        record = dict.fromkeys(JOB_KEYS)
        record.update(
            job_id=job_id,
            job_state=JobState.STAGING.value if _is_staging(params) else JobState.SUBMITTED.value,
            job_type=job_type,
            retry=int(params["retry"]),
            retry_delay=int(params["retry_delay"]),
            submit_host=self.submit_host,
            submit_time=iso(self.now),
            priority=max(min(int(params["priority"]), 5), 1),
            destination_spacetoken=params.get("destination_spacetoken") or None,
            source_spacetoken=params.get("source_spacetoken") or None,
            overwrite_flag=overwrite_flag,
            dst_file_report=_flag(params["dst_file_report"]),
            copy_pin_lifetime=_safe_int(params["copy_pin_lifetime"]),
            bring_online=_safe_int(params["bring_online"]),
            archive_timeout=_safe_int(params["archive_timeout"]),
            job_metadata=params["job_metadata"],
            internal_job_params=_internal_job_params(params),
            max_time_in_queue=int(self.now + expires) if expires is not None else None,
            cancel_job=False,
        )
        return record

    def _file_rows(
        self,
        file_dict: Any,
        index: int,
        record: dict[str, Any],
        params: dict[str, Any],
        shared_hashed_id: int | None,
    ) -> list[dict]:
        pairs = []
        file_dict.get("source_tokens", [])  # a non-object entry fails here, as upstream
        for source in file_dict["sources"]:
            source_url = urlparse(source.strip())
            _validate_url(source_url)
            for destination in file_dict["destinations"]:
                dest_url = urlparse(destination.strip())
                _validate_url(dest_url)
                pairs.append((source_url, dest_url))
        initial = FileState.STAGING if _is_staging(params) else FileState.SUBMITTED
        if len(file_dict["sources"]) > 1 or params["multihop"]:
            initial = FileState.NOT_USED
            shared_hashed_id = shared_hashed_id or self.store.hashed_id()
        rows = [
            self._file_row(
                file_dict, index, record, params, source, dest, initial, shared_hashed_id
            )
            for source, dest in pairs
        ]
        tokens = self.store.tokens.file_tokens(file_dict, self.identity)
        self.token_rows.update(self.store.tokens.label(rows, tokens, self.identity))
        return rows

    def _file_row(
        self,
        file_dict: dict,
        index: int,
        record: dict[str, Any],
        params: dict[str, Any],
        source: ParseResult,
        destination: ParseResult,
        initial: FileState,
        shared_hashed_id: int | None,
    ) -> dict[str, Any]:
        if _is_staging(params) and source.scheme == "root":
            # EOS-CTA wants the activity in the URL (case 044).
            if source == destination:
                destination = _with_activity(destination, file_dict)
            source = _with_activity(source, file_dict)
        limit = self.store.metadata_limit
        row = dict.fromkeys(FILE_KEYS)
        row.update(
            job_id=record["job_id"],
            file_index=index,
            file_state=initial.value,
            file_state_initial="",
            source_surl=source.geturl(),
            dest_surl=destination.geturl(),
            source_se=storage_element(source),
            dest_se=storage_element(destination),
            priority=record["priority"],
            user_filesize=int(_filesize(file_dict.get("filesize", 0))),
            selection_strategy=file_dict.get("selection_strategy", "auto"),
            checksum=file_dict.get("checksum"),
            file_metadata=_optional_metadata(file_dict.get("metadata"), limit("file")),
            staging_metadata=_optional_metadata(
                file_dict.get("staging_metadata"), limit("staging"), "Staging metadata"
            ),
            archive_metadata=_optional_metadata(
                file_dict.get("archive_metadata"), limit("archive"), "Archive metadata"
            ),
            activity=file_dict.get("activity", "default") or "default",
            scitag=_scitag(file_dict.get("scitag")),
            hashed_id=shared_hashed_id if shared_hashed_id else self.store.hashed_id(),
            retry=0,
        )
        return row

    @staticmethod
    def _apply_job_type(
        record: dict[str, Any], files: list[dict], params: dict[str, Any], staging: bool
    ) -> None:
        indexes = [f["file_index"] for f in files]
        unique = len(set(indexes))
        multiple_replica = unique != len(indexes)
        if multiple_replica:
            if record["job_type"] in ("H", "Y"):
                raise HTTPError(
                    400,
                    "Can not request multiple replica job together with multihop or session "
                    "reuse at the same time",
                )
            if unique > 1:
                raise HTTPError(400, "Multiple replica jobs must only have one unique file")
        if record["job_type"] == "Y" and not (record["source_se"] and record["dest_se"]):
            raise HTTPError(
                400,
                "Reuse jobs must only contain transfers for the same source ad destination storage",
            )
        entry = FileState.STAGING.value if staging else FileState.SUBMITTED.value
        if multiple_replica:
            record["job_type"] = "R"
            strategy = files[0]["selection_strategy"]
            if strategy not in SELECTION_STRATEGIES:
                raise HTTPError(400, f"{strategy} algorithm is not supported by Scheduler")
            # Without link statistics every strategy ranks the sources in their given order.
            files[0]["file_state"] = entry
        elif params["multihop"]:
            files[0]["file_state"] = entry


# -- the server's JobBuilder_utils ------------------------------------------------------


def refuse_token_tape_requests(document: dict) -> None:
    try:
        params = document["params"]
    except KeyError:
        # 3.13 reads the key directly: a token submission without params is a 500.
        raise HTTPError(500, INTERNAL_ERROR) from None
    for name in ("bring_online", "archive_timeout"):
        value = params.get(name) if isinstance(params, dict) else None
        if isinstance(value, int) and value > 0:
            raise HTTPError(
                400,
                "Requests to retrieve from tape/archive to tape using token authentication "
                "are not supported",
            )


def _validate_url(url: ParseResult) -> None:
    if not url.scheme:
        raise ValueError(f"Missing scheme ({url.geturl()})")
    if url.scheme == "file":
        raise ValueError(f"Can not transfer local files ({url.geturl()})")
    if not url.path or (url.path == "/" and not url.query):
        raise ValueError(f"Missing path ({url.geturl()})")
    if not url.hostname:
        raise ValueError(f"Missing host ({url.geturl()})")


def storage_element(url: ParseResult) -> str:
    # Interned: a million rows name a handful of storage elements.
    return sys.intern(f"{url.scheme}://{url.hostname}")


def _with_activity(url: ParseResult, file_dict: dict) -> ParseResult:
    query = parse_qsl(url.query)
    query.append(("activity", file_dict.get("activity", "default")))
    return url._replace(query=urlencode(query))


def _flag(value: Any) -> bool:
    """The server's ``safe_flag``: strings are true when they start with Y."""
    if isinstance(value, str):
        return len(value) > 0 and value[0].upper() == "Y"
    return bool(value)


def _safe_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _filesize(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _is_staging(params: dict[str, Any]) -> bool:
    return _safe_int(params["copy_pin_lifetime"]) > 0 or _safe_int(params["bring_online"]) > 0


def _seconds_from_value(value: Any) -> int | None:
    """``max_time_in_queue``: an int is hours, a string has an s/m/h/d suffix."""
    if isinstance(value, int) and value != 0:
        return value * 3600
    if not isinstance(value, str) or not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return int(value[:-1]) * units[value[-1].lower()]
    except (KeyError, ValueError):
        return None


def _metadata(value: Any, limit: int, require_dict: bool = False, name: str = "Metadata") -> dict:
    if isinstance(value, str) and not require_dict:
        value = {"label": value}
    elif not isinstance(value, dict):
        raise ValueError(
            f"{name} not in JSON format" if require_dict else "Metadata neither JSON nor String"
        )
    if limit > 0 and len(json.dumps(value)) > limit:
        raise ValueError(f"Job Submission Refused, metadata exceeds size limit of {limit}")
    return value


def _optional_metadata(value: Any, limit: int, name: str | None = None) -> dict | None:
    if value is None:
        return None
    return _metadata(value, limit, require_dict=name is not None, name=name or "Metadata")


def _scitag(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 65 <= value <= 65535:
        raise HTTPError(400, f"Invalid SciTag value: {value}")
    return value


def _overwrite_flag(params: dict[str, Any], job_type: str, files: Any) -> str | None:
    overwrite = _flag(params["overwrite"])
    on_retry = _flag(params["overwrite_on_retry"])
    on_disk = _flag(params["overwrite_when_only_on_disk"])
    hop = _flag(params["overwrite_hop"])
    count = sum((overwrite, on_retry, on_disk, hop))
    if count > 1 and not (count == 2 and hop and on_disk):
        raise HTTPError(400, "Incompatible overwrite flags used at the same time")
    if on_disk and _safe_int(params["archive_timeout"]) <= 0:
        raise HTTPError(400, "'overwrite-when-only-on-disk' requires 'archive-timeout' to be set")
    flag = "Y" if overwrite else "R" if on_retry else None
    if flag is None and hop:
        flag = "Q" if on_disk else "M"
    elif flag is None and on_disk:
        flag = "D"
    if flag in ("M", "Q") and job_type != "H":
        raise HTTPError(400, "'overwrite-hop' requires multihop job submission")
    if flag in ("D", "Q"):
        _require_tape_rest_destinations(job_type, files)
    return flag


def _require_tape_rest_destinations(job_type: str, files: Any) -> None:
    entries = files[-1:] if job_type == "H" else files
    for entry in entries:
        for destination in entry["destinations"]:
            if not destination.startswith(("https://", "davs://", "mock://")):
                raise HTTPError(
                    400,
                    "'overwrite-when-only-on-disk' requires destination to be HTTPs endpoint "
                    "(Tape REST API required)",
                )


def _internal_job_params(params: dict[str, Any]) -> str | None:
    parts = []
    for key, label in (
        ("nostreams", "nostreams"),
        ("timeout", "timeout"),
        ("buffer_size", "buffersize"),
    ):
        if params.get(key):
            parts.append(f"{label}:{int(params[key])}")
    for key, label in (("strict_copy", "strict"), ("disable_cleanup", "disable-cleanup")):
        if params.get(key):
            parts.append(label)
    if params.get("ipv4"):
        parts.append("ipv4")
    elif params.get("ipv6"):
        parts.append("ipv6")
    if params.get("s3alternate"):
        parts.append("s3alternate")
    return ",".join(parts) or None


def _checksum_method(method: Any, files: list[dict]) -> str:
    """One letter; a real FTS 3.13 server stores ``ADLER32`` for every file without a checksum."""
    has_checksum = False
    for row in files:
        if row["checksum"] is not None:
            # Upstream keeps only the last file's answer; kept for fidelity.
            has_checksum = len(row["checksum"]) > 0
        else:
            row["checksum"] = "ADLER32"
    if method is True:
        method = "both"
    elif method is False:
        method = "target" if has_checksum else "none"
    return method[0]


def _set_job_storage(record: dict[str, Any], files: list[dict]) -> None:
    if record["job_type"] == "H":
        record["source_se"], record["dest_se"] = files[0]["source_se"], files[-1]["dest_se"]
        return
    sources = {f["source_se"] for f in files}
    dests = {f["dest_se"] for f in files}
    record["source_se"] = files[0]["source_se"] if len(sources) == 1 else None
    record["dest_se"] = files[0]["dest_se"] if len(dests) == 1 else None
