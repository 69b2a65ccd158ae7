"""Job parameters (``params`` of ``POST /jobs``): :class:`JobParams` and their rules.

Every parameter is checked and normalised to the server's units when built, and the
rules between parameters (overwrite flags, multihop, ids) are checked together. An
unknown name is refused with the closest known one, or with where that field belongs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any, Literal

from airflow_provider_fts.client.checks import is_int, suggestion
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.transfer import TRANSFER_KEYS

__all__ = ["JobParams", "VerifyChecksum"]

PRIORITY_RANGE = range(1, 6)
VERIFY_CHECKSUM_MODES = ("both", "source", "target", "none")

VerifyChecksum = Literal["both", "source", "target", "none"]

_DURATION = re.compile(r"([0-9]+)([smhd])", re.IGNORECASE)
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _flag(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise FTSValidationError(where, f"must be True or False, not {value!r}.", "Pass a bool.")
    return value


def _text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise FTSValidationError(
            where, f"must be a non-empty string, not {value!r}.", "Pass a str, or leave it out."
        )
    return value


def _positive_int(where: str, value: object) -> int:
    if not is_int(value) or value <= 0:
        raise FTSValidationError(
            where, f"must be an int > 0, not {value!r}.", "Leave it out for the default."
        )
    return value


def _whole_seconds(where: str, value: object) -> int | None:
    """Seconds of an int or a timedelta; ``None`` if it is neither."""
    if is_int(value):
        return value
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds != int(seconds):
            raise FTSValidationError(
                where, f"{value} is not a whole number of seconds.", "Round it."
            )
        return int(seconds)
    return None


def _seconds(where: str, value: object) -> int:
    seconds = _whole_seconds(where, value)
    if seconds is None or seconds <= 0:
        raise FTSValidationError(
            where,
            f"must be a duration > 0 in seconds (an int or a timedelta), not {value!r}.",
            "Leave it out (None) to not use it.",
        )
    return seconds


def _retry_delay(where: str, value: object) -> int:
    seconds = _whole_seconds(where, value)
    if seconds is None or seconds < 0:
        raise FTSValidationError(
            where,
            f"must be a delay in seconds >= 0 (an int or a timedelta), not {value!r}. "
            "(It is seconds, although the official client's docstring says minutes.)",
            "Give e.g. retry_delay=600 or timedelta(minutes=10); 0 means the server default.",
        )
    return seconds


def _retry(where: str, value: object) -> int:
    if not is_int(value) or value < -1:
        raise FTSValidationError(
            where,
            f"must be an int >= -1, not {value!r}.",
            "Use -1 for no retries, 0 for the server's default, or N > 0 for N retries.",
        )
    return value


def _priority(where: str, value: object) -> int:
    if not is_int(value) or value not in PRIORITY_RANGE:
        raise FTSValidationError(
            where,
            f"must be an int from 1 to 5, not {value!r} (FTS would silently clamp it).",
            "Use 1 (lowest) to 5 (highest); 3 is the default.",
        )
    return value


def _queue_time(where: str, value: object) -> str:
    """``max_time_in_queue`` as a suffixed string the server cannot misread.

    A bare int means hours to the server (and so to us); the suffix ``d`` is unknown to
    older servers (they then set no limit at all), so days are sent as hours.
    """
    fix = "Give a timedelta, an int number of hours, or a string such as '90m', '6h', '2d'."
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise FTSValidationError(
                where, f"{value!r} is not a duration FTS reads (no unit?).", fix
            )
        seconds = int(match[1]) * _SECONDS_PER_UNIT[match[2].lower()]
    elif is_int(value):
        seconds = value * 3600
    else:
        seconds = _whole_seconds(where, value)
        if seconds is None:
            raise FTSValidationError(where, f"must be a duration, not {type(value).__name__}.", fix)
    if seconds <= 0:
        raise FTSValidationError(where, f"must be a positive duration, not {value!r}.", fix)
    for unit in ("h", "m"):
        if seconds % _SECONDS_PER_UNIT[unit] == 0:
            return f"{seconds // _SECONDS_PER_UNIT[unit]}{unit}"
    return f"{seconds}s"


def _verify_checksum(where: str, value: object) -> str:
    if isinstance(value, bool):
        return "both" if value else "none"
    if isinstance(value, str) and value.lower() in VERIFY_CHECKSUM_MODES:
        return value.lower()
    raise FTSValidationError(
        where,
        f"{value!r} is not a checksum mode (FTS would silently keep its first letter).",
        f"Use one of {', '.join(VERIFY_CHECKSUM_MODES)} (True means both, False none).",
    )


def _job_metadata(where: str, value: object) -> dict | str:
    if not isinstance(value, (dict, str)):
        raise FTSValidationError(
            where,
            f"must be a dict or a str, not {type(value).__name__}.",
            "Wrap it in a dict, e.g. {'items': [...]}.",
        )
    return value


def _id_generator(where: str, value: object) -> str:
    if value not in ("standard", "deterministic"):
        raise FTSValidationError(
            where,
            f"must be 'standard' or 'deterministic', not {value!r}.",
            "Use 'deterministic' with a sid for idempotent submissions.",
        )
    return value


def _sid(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise FTSValidationError(
            where,
            f"must be a non-empty string, not {value!r} (FTS fails on other types).",
            "Convert it with str().",
        )
    return value


_Normaliser = Callable[[str, Any], Any]
_OVERWRITE_FLAGS = (
    "overwrite",
    "overwrite_on_retry",
    "overwrite_hop",
    "overwrite_when_only_on_disk",
)
_COMBINABLE_OVERWRITES = {"overwrite_hop", "overwrite_when_only_on_disk"}


@dataclass(frozen=True)
class JobParams:
    """Every job parameter FTS reads from a submission's ``params``, in the server's units.

    Values are normalised when built: durations become int seconds, ``verify_checksum``
    one of its four words, ``max_time_in_queue`` a suffixed string ("90m", "6h"). A
    ``sid`` without ``id_generator`` selects deterministic ids (a sid means nothing else).
    """

    verify_checksum: VerifyChecksum | bool | None = None
    overwrite: bool | None = None
    overwrite_on_retry: bool | None = None
    overwrite_hop: bool | None = None
    overwrite_when_only_on_disk: bool | None = None
    reuse: bool | None = None
    multihop: bool | None = None
    bring_online: int | timedelta | None = None
    copy_pin_lifetime: int | timedelta | None = None
    archive_timeout: int | timedelta | None = None
    dst_file_report: bool | None = None
    source_spacetoken: str | None = None
    destination_spacetoken: str | None = None
    priority: int | None = None
    retry: int | None = None
    retry_delay: int | timedelta | None = None
    max_time_in_queue: int | str | timedelta | None = None
    timeout: int | timedelta | None = None
    nostreams: int | None = None
    buffer_size: int | None = None
    strict_copy: bool | None = None
    disable_cleanup: bool | None = None
    ipv4: bool | None = None
    ipv6: bool | None = None
    s3alternate: bool | None = None
    job_metadata: dict | str | None = None
    id_generator: Literal["standard", "deterministic"] | None = None
    sid: str | None = None
    unmanaged_tokens: bool | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        for name, normalise in _NORMALISERS.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, normalise(f"job_params.{name}", value))
        if self.sid is not None and self.id_generator is None:
            object.__setattr__(self, "id_generator", "deterministic")
        self._check_combinations()

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> JobParams:
        """Job parameters from keyword arguments; unknown names are refused with a hint."""
        for name in params:
            if name not in _PARAM_NAMES:
                raise _unknown_param(name)
        return cls(**params)

    def _check_combinations(self) -> None:
        overwrites = [name for name in _OVERWRITE_FLAGS if getattr(self, name)]
        if len(overwrites) > 1 and set(overwrites) != _COMBINABLE_OVERWRITES:
            raise FTSValidationError(
                f"job_params.{overwrites[1]}",
                f"cannot be combined with {overwrites[0]} (FTS: 'Incompatible overwrite flags').",
                "Set only one overwrite flag; only overwrite_hop and "
                "overwrite_when_only_on_disk may go together.",
            )
        if self.overwrite_hop and not self.multihop:
            raise FTSValidationError(
                "job_params.overwrite_hop",
                "only applies to multihop jobs.",
                "Set multihop=True, or use overwrite.",
            )
        if self.overwrite_when_only_on_disk and not self.archive_timeout:
            raise FTSValidationError(
                "job_params.overwrite_when_only_on_disk",
                "needs archive_timeout > 0 (FTS refuses it otherwise).",
                "Set archive_timeout (seconds) for the tape destination.",
            )
        if self.multihop and self.reuse:
            raise FTSValidationError(
                "job_params.reuse",
                "cannot be combined with multihop (FTS would ignore it).",
                "Drop reuse.",
            )
        if self.ipv4 and self.ipv6:
            raise FTSValidationError(
                "job_params.ipv6",
                "and ipv4 are both set; FTS would silently use IPv4.",
                "Force one of them, or neither.",
            )
        self._check_job_id()

    def _check_job_id(self) -> None:
        if self.id_generator == "deterministic" and self.sid is None:
            raise FTSValidationError(
                "job_params.sid",
                "is needed for deterministic job ids.",
                "Give a sid unique to this submission, e.g. built from DAG, task, run, chunk.",
            )
        if self.id_generator == "standard" and self.sid is not None:
            raise FTSValidationError(
                "job_params.sid",
                "is ignored with id_generator='standard'.",
                "Use id_generator='deterministic' (or leave it out) to use the sid.",
            )

    def to_json(self) -> dict[str, Any]:
        """The ``params`` object, with only the keys that are set."""
        params = {
            name: getattr(self, name) for name in _PARAM_NAMES if getattr(self, name) is not None
        }
        if self.destination_spacetoken is not None:
            # Servers before 3.13 read only the old name.
            params["spacetoken"] = self.destination_spacetoken
        return params


_NORMALISERS: dict[str, _Normaliser] = {
    "verify_checksum": _verify_checksum,
    **dict.fromkeys(
        (
            "overwrite",
            "overwrite_on_retry",
            "overwrite_hop",
            "overwrite_when_only_on_disk",
            "reuse",
            "multihop",
            "dst_file_report",
            "strict_copy",
            "disable_cleanup",
            "ipv4",
            "ipv6",
            "s3alternate",
            "unmanaged_tokens",
        ),
        _flag,
    ),
    **dict.fromkeys(("bring_online", "copy_pin_lifetime", "archive_timeout", "timeout"), _seconds),
    **dict.fromkeys(("source_spacetoken", "destination_spacetoken", "credential"), _text),
    **dict.fromkeys(("nostreams", "buffer_size"), _positive_int),
    "priority": _priority,
    "retry": _retry,
    "retry_delay": _retry_delay,
    "max_time_in_queue": _queue_time,
    "job_metadata": _job_metadata,
    "id_generator": _id_generator,
    "sid": _sid,
}
_PARAM_NAMES = tuple(f.name for f in fields(JobParams))

_PER_TRANSFER = "It is a per-transfer field: set it on each transfer."
_PARAM_HINTS = {
    "delete": (
        "Deletion jobs are not supported: FTS answers 405 since 3.12.3.",
        "Delete files with the storage's own tools (e.g. gfal-rm).",
    ),
    "spacetoken": ("is the old name.", "Use destination_spacetoken (both names are sent)."),
    "metadata": ("is ambiguous.", "Use job_metadata, or 'metadata' on each transfer."),
    "file_metadata": ("is not a job parameter.", "Set 'metadata' on each transfer."),
    **dict.fromkeys(
        TRANSFER_KEYS - {"sources", "destinations", "source", "destination", "metadata"},
        ("is not a job parameter.", _PER_TRANSFER),
    ),
}


def _unknown_param(name: str) -> FTSValidationError:
    problem, fix = _PARAM_HINTS.get(
        name, ("is not a job parameter.", suggestion(name, _PARAM_NAMES))
    )
    return FTSValidationError(f"job_params.{name}", problem, fix)
