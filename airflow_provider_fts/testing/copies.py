"""One copy attempt of one file, as ``fts_url_copy`` makes it: real bytes or a scripted mock.

Files whose source and destination both map to a local directory are copied for real
(with ADLER32/MD5 checksums); every other URL is a scripted outcome.
``mock://`` URLs follow gfal2's mock plugin (``src/plugins/mock/README_PLUGIN_MOCK``),
all optional query parameters:

=================  ============  ====================================================
parameter          on            effect
=================  ============  ====================================================
``size``           source        bytes reported as ``filesize`` (else ``filesize``)
``errno``          source        the source stat fails with that errno (SOURCE)
``errno``          destination   the destination stat fails (DESTINATION); ENOENT just
                                 means "not there yet", as in the plugin's example
``size_pre``       destination   > 0: the destination exists before the copy
``time``           destination   transfer duration in seconds (float allowed)
``transfer_errno`` destination   the copy fails with that errno (TRANSFER)
``fail_attempts``  destination   emulator extension: ``transfer_errno`` applies only to
                                 the first N attempts (to script "retry, then success")
``fail_jobs``      destination   emulator extension: ``transfer_errno`` applies only in
                                 the first N jobs that carry this destination URL (to
                                 script "fails, then a resubmission succeeds")
``recoverable``    destination   emulator extension: ``unknown`` stores a failure's
                                 ``recoverable`` as null (older servers)
``checksum``       both          the checksum value the endpoint reports
``staging_time``   source        bring-online duration in seconds
``staging_errno``  source        bring-online fails with that errno
``archiving_time`` destination   archive-poll duration in seconds
``archiving_errno`` destination  archiving fails with that errno
=================  ============  ====================================================

URLs that are neither ``mock://`` nor mapped by ``storage`` behave like ``mock://``
"""

from __future__ import annotations

import errno as errno_codes
import hashlib
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlparse

__all__ = ["Failure", "copy_once", "int_param", "is_recoverable", "seconds_param", "url_params"]

DESTINATION_EXISTS = "Destination file exists and overwrite is not enabled"

_RETRY_IMPLIED = (
    "performance marker", "Name or service not known", "Connection timed out",
    "end-of-file was reached", "end of file occurred", "SRM_INTERNAL_ERROR",
    "was forcefully killed", "operation timeout",
)  # fmt: skip
_NO_RETRY_IMPLIED = (
    "proxy expired", "File exists and overwrite", "No such file or directory",
    "Permission denied", "File exists", "checksum do not match", "CHECKSUM MISMATCH",
    "Destination file exists",
)  # fmt: skip
_FATAL_BY_SCOPE = {
    "SOURCE": {"ENOENT", "EPERM", "EACCES", "EISDIR", "ENAMETOOLONG", "E2BIG", "ENOTDIR",
               "EPROTONOSUPPORT"},
    "DESTINATION": {"EPERM", "EACCES", "EISDIR", "ENAMETOOLONG", "E2BIG", "EPROTONOSUPPORT"},
    "TRANSFER": {"ENOSPC", "EPERM", "EACCES", "EEXIST", "EFBIG", "EROFS", "ENAMETOOLONG",
                 "EPROTONOSUPPORT"},
}  # fmt: skip


def is_recoverable(code: int, scope: str, message: str) -> bool:
    """Whether ``fts_url_copy`` would let the daemon retry this error (its heuristics)."""
    if any(text in message for text in _RETRY_IMPLIED) or code == errno_codes.ETIMEDOUT:
        return True
    if code == errno_codes.ECANCELED or any(text in message for text in _NO_RETRY_IMPLIED):
        return False
    name = errno_codes.errorcode.get(code, "")
    return name not in _FATAL_BY_SCOPE.get(scope, _FATAL_BY_SCOPE["TRANSFER"])


@dataclass(frozen=True)
class Failure:
    """Why one attempt failed; ``reason`` is the text FTS stores on the file."""

    scope: str  # SOURCE | DESTINATION | TRANSFER
    code: int
    message: str

    @classmethod
    def of(cls, scope: str, code: int, message: str | None = None) -> Failure:
        return cls(scope, code, message or os.strerror(code))

    @property
    def reason(self) -> str:
        return f"{self.scope} [{self.code}] {self.message}"

    @property
    def recoverable(self) -> bool:
        return is_recoverable(self.code, self.scope, self.message)


def copy_once(
    source: Path | None,
    destination: Path | None,
    row: dict,
    verify: str,
    overwrite_flag: str | None,
    job_number: int = 1,
) -> int | Failure:
    """Bytes copied, or why the attempt failed.

    :param source: the source file when its URL maps to a local directory, else None.
    :param destination: the destination file when its URL maps to a local directory.
    :param row: the file row (URLs, checksum, size, retry count).
    :param verify: the job's checksum mode letter (``n``, ``s``, ``t`` or ``b``).
    :param overwrite_flag: the job's ``overwrite_flag`` (``Y``, ``R``, ...).
    :param job_number: which job, counted from 1, carries this destination URL here.
    """
    overwrite = _may_overwrite(overwrite_flag, row["retry"])
    if source is not None and destination is not None:
        return _copy_files(source, destination, row["checksum"], verify, overwrite)
    return _mock_copy(row, verify, overwrite, job_number)


def _may_overwrite(flag: str | None, retry: int) -> bool:
    return flag == "Y" or (flag == "R" and retry > 0)


def _mock_copy(row: dict, verify: str, overwrite: bool, job_number: int) -> int | Failure:
    source, destination = url_params(row["source_surl"]), url_params(row["dest_surl"])
    if code := int_param(source, "errno"):
        return Failure.of("SOURCE", code)
    code = int_param(destination, "errno")
    if code and code != errno_codes.ENOENT:
        return Failure.of("DESTINATION", code)
    if int_param(destination, "size_pre") > 0 and not overwrite:
        return Failure.of("DESTINATION", errno_codes.EEXIST, DESTINATION_EXISTS)
    user = _user_checksum(row["checksum"])
    mismatch = _checksum_mismatch(verify, user, _value(source, "checksum"), None)
    if mismatch:
        return mismatch
    code = int_param(destination, "transfer_errno")
    attempts = int_param(destination, "fail_attempts")
    jobs = int_param(destination, "fail_jobs")
    if code and (not attempts or row["retry"] < attempts) and (not jobs or job_number <= jobs):
        return Failure.of("TRANSFER", code)
    source_value = _value(source, "checksum")
    mismatch = _checksum_mismatch(verify, user, source_value, _value(destination, "checksum"))
    if mismatch:
        return mismatch
    return int_param(source, "size") or row["user_filesize"] or 0


def _copy_files(
    source: Path, destination: Path, checksum: str, verify: str, overwrite: bool
) -> int | Failure:
    if not source.is_file():
        return Failure.of("SOURCE", errno_codes.ENOENT)
    if destination.exists() and not overwrite:
        return Failure.of("DESTINATION", errno_codes.EEXIST, DESTINATION_EXISTS)
    algorithm = checksum.split(":", 1)[0].upper()
    user = _user_checksum(checksum)
    with source.open("rb") as stream:
        source_value = _digest(stream, algorithm)
    mismatch = _checksum_mismatch(verify, user, source_value, None)
    if mismatch:
        return mismatch
    destination.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with source.open("rb") as reader, destination.open("wb") as writer:
        while chunk := reader.read(1 << 20):
            writer.write(chunk)
            size += len(chunk)
    with destination.open("rb") as stream:
        destination_value = _digest(stream, algorithm)
    mismatch = _checksum_mismatch(verify, user, source_value, destination_value)
    if mismatch:
        destination.unlink()  # url-copy cleans up a bad copy
        return mismatch
    return size


def _digest(stream: BinaryIO, algorithm: str) -> str:
    if algorithm == "MD5":
        md5 = hashlib.md5(usedforsecurity=False)
        while chunk := stream.read(1 << 20):
            md5.update(chunk)
        return md5.hexdigest()
    adler = 1
    while chunk := stream.read(1 << 20):
        adler = zlib.adler32(chunk, adler)
    return f"{adler:08x}"


def _checksum_mismatch(
    verify: str, user: str | None, source: str | None, destination: str | None
) -> Failure | None:
    """Compare as ``fts_url_copy`` does for the job's mode letter; missing values pass.

    With ``destination`` None only the pre-copy check (user vs source) runs.
    """
    if destination is None:
        if verify in ("s", "b") and _differ(user, source):
            return _mismatch("SOURCE", "User defined checksum and source checksum", user, source)
        return None
    if verify == "b" and _differ(source, destination):
        return _mismatch("TRANSFER", "Source and destination checksums", source, destination)
    if verify in ("t", "b") and _differ(user, destination):
        return _mismatch(
            "DESTINATION", "User defined checksum and destination checksum", user, destination
        )
    return None


def _differ(first: str | None, second: str | None) -> bool:
    return bool(first and second) and _normal(first) != _normal(second)  # type: ignore[arg-type]


def _normal(value: str) -> str:
    return value.lower().lstrip("0") or "0"


def _mismatch(scope: str, what: str, first: str | None, second: str | None) -> Failure:
    return Failure(
        scope, errno_codes.EIO, f"CHECKSUM MISMATCH {what} do not match {first} != {second}"
    )


def _user_checksum(checksum: str | None) -> str | None:
    if not checksum or ":" not in checksum:
        return None
    return checksum.split(":", 1)[1] or None


def url_params(url: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlparse(url).query).items()}


def _value(params: Mapping[str, str], name: str) -> str | None:
    return params.get(name) or None


def int_param(params: Mapping[str, str], name: str) -> int:
    try:
        return int(params.get(name, 0))
    except ValueError:
        return 0


def seconds_param(params: Mapping[str, str], name: str, default: float) -> float:
    try:
        return max(float(params[name]), 0.0)
    except (KeyError, ValueError):
        return default
