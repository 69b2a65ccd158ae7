"""The job submission document (``POST /jobs``), validated before anything is sent.

FTS checks little and silently accepts much that is wrong: ``verify_checksum="bogus"`` is
stored as ``b``, priority 10 becomes 5, ``max_time_in_queue=2`` means two *hours*, a
negative file size is kept. So everything is checked here, and a DAG fails at once with
the field and the fix instead of hours later on the server. Every problem raises
:class:`FTSValidationError` naming the place, e.g. ``transfers[3].sources[0]`` or
``job_params.max_time_in_queue``; the first problem found is raised.

Only keys that are set are sent: the server merges its own defaults.
"""

from __future__ import annotations

import difflib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, Literal

from airflow_provider_fts.client.errors import FTSValidationError

__all__ = [
    "BASE_ID",
    "JobParams",
    "MetadataLimits",
    "Transfer",
    "build_submission",
    "expected_job_id",
]

#: Namespace of deterministic job ids (the server's ``BASE_ID``, also in ``/whoami``).
BASE_ID = "01874efb-4735-4595-bc9c-591aef8240c9"

MAX_URL_LENGTH = 1100  # t_file.source_surl / dest_surl are VARCHAR(1100)
MAX_ACTIVITY_LENGTH = 255  # t_file.activity
SCITAG_RANGE = range(65, 65536)
PRIORITY_RANGE = range(1, 6)
SELECTION_STRATEGIES = frozenset(
    {
        "auto",
        "queue",
        "orderly",
        "success",
        "throughput",
        "file-throughput",
        "pending-data",
        "waiting-time",
        "waiting-time-with-error",
        "duration",
    }
)
VERIFY_CHECKSUM_MODES = ("both", "source", "target", "none")
#: Tape REST API endpoints, the only ones 3.13 servers accept with overwrite_when_only_on_disk.
OVERWRITE_ON_DISK_SCHEMES = frozenset({"https", "davs"})
#: Hex digits of the values of the algorithms we know (CRC32 is written in hex or decimal).
CHECKSUM_DIGITS = {"adler32": range(8, 9), "md5": range(32, 33), "crc32": range(1, 11)}

VerifyChecksum = Literal["both", "source", "target", "none"]

_EXAMPLE_URL = "davs://storage.example.org/path/file"
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#\s]*)(/[^?#\s]*)?(\?[^#\s]*)?(?:#\S*)?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_WHITESPACE = re.compile(r"\s")
_ALGORITHM = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_DURATION = re.compile(r"([0-9]+)([smhd])", re.IGNORECASE)
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def expected_job_id(vo: str, sid: str, base_id: str = BASE_ID) -> str:
    """The id FTS gives a job submitted with ``id_generator="deterministic"`` and ``sid``.

    ``uuid5(uuid5(base_id, vo), sid)``, where ``vo`` is the first VO of ``/whoami`` (for a
    proxy without VOMS attributes, FTS uses the delegation id as VO).
    """
    for name, value in (("vo", vo), ("sid", sid)):
        if not isinstance(value, str) or not value:
            raise FTSValidationError(
                name, f"must be a non-empty string, not {value!r}.", f"Pass the {name} as a str."
            )
    return str(uuid.uuid5(uuid.uuid5(uuid.UUID(base_id), vo), sid))


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


# -- small checks shared by transfers and job parameters ----------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(url: str) -> str:
    """A URL fit for an error message: queries may hold signatures, so they are cut."""
    base, has_query, _ = url.partition("?")
    base = base if len(base) <= 120 else base[:117] + "..."
    return repr(base + ("?..." if has_query else ""))


def _host(authority: str) -> str:
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):
        return host_port[1 : host_port.find("]")] if "]" in host_port else ""
    return host_port.partition(":")[0]


def _url_problem(url: object) -> tuple[str, str] | None:
    """What is wrong with a transfer URL as FTS sees it (``None``: nothing)."""
    if not isinstance(url, str):
        return f"is a {type(url).__name__}, not a URL string.", "Give each URL as a str."
    if len(url) > MAX_URL_LENGTH:
        return (
            f"is {len(url)} characters long; FTS stores at most {MAX_URL_LENGTH}.",
            "Shorten the path or the query string.",
        )
    match = _URL.fullmatch(url)
    if match is None:
        return _malformed_url_problem(url)
    scheme, authority, path, query = match.groups()
    if scheme.lower() == "file":
        return _local_file_problem(url)
    if not _host(authority):
        return (
            f"{_shown(url)} has no host.",
            f"Write it as scheme://host/path, e.g. {_EXAMPLE_URL}.",
        )
    if not path or (path == "/" and not query):
        return f"{_shown(url)} has no path.", f"Add the file's path, e.g. {_EXAMPLE_URL}."
    return None


def _malformed_url_problem(url: str) -> tuple[str, str]:
    if _WHITESPACE.search(url):
        return (
            f"{_shown(url)} contains whitespace.",
            "Remove it (strip the URL) or percent-encode a space inside a path as %20.",
        )
    scheme, colon, _ = url.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        return f"{_shown(url)} has no scheme.", f"Write the full URL, e.g. {_EXAMPLE_URL}."
    if scheme.lower() == "file":
        return _local_file_problem(url)
    return f"{_shown(url)} has no host.", f"Write it as scheme://host/path, e.g. {_EXAMPLE_URL}."


def _local_file_problem(url: str) -> tuple[str, str]:
    return (
        f"{_shown(url)} is a local file; FTS only copies between storage endpoints.",
        "Upload it to a storage endpoint first, or use that endpoint's URL.",
    )


def _json_size(value: dict | str, where: str) -> int:
    """Bytes of ``json.dumps`` of the metadata as the server stores it (str -> label)."""
    stored = {"label": value} if isinstance(value, str) else value
    try:
        return len(json.dumps(stored))
    except (TypeError, ValueError) as exc:
        raise FTSValidationError(
            where,
            f"is not JSON-serialisable ({exc}).",
            "Use only dicts, lists, str, int, float, bool and None in metadata.",
        ) from None


def _check_size(value: dict | str, where: str, limit: int, setting: str) -> None:
    size = _json_size(value, where)  # also proves it serialisable when there is no limit
    if limit and size > limit:
        raise FTSValidationError(
            where,
            f"is {size} bytes as JSON, over the server's {setting} of {limit} bytes.",
            f"Make it smaller, or if your server sets {setting} higher, pass "
            f"metadata_limits=MetadataLimits(...) with that value (0 = unlimited).",
        )


# -- one transfer ---------------------------------------------------------------------------

_TRANSFER = "transfer"  # field prefix of a Transfer on its own; coerce() names the index


def _url_tuple(urls: object, where: str, singular: str) -> tuple[str, ...]:
    if isinstance(urls, str):
        raise FTSValidationError(
            where,
            "is a single string; FTS would read it character by character.",
            f"Give a list of URLs ({where.rpartition('.')[2]}=[...]) or use '{singular}'.",
        )
    if not isinstance(urls, (list, tuple)):
        raise FTSValidationError(
            where, f"must be a list of URLs, not {type(urls).__name__}.", "Give a list of str."
        )
    if not urls:
        raise FTSValidationError(
            where, "is empty; a transfer needs at least one URL.", "Add the URL."
        )
    for position, url in enumerate(urls):
        problem = _url_problem(url)
        if problem is not None:
            raise FTSValidationError(f"{where}[{position}]", *problem)
    return tuple(urls)


def _checksum_problem(checksum: object) -> tuple[str, str] | None:
    example = "Write it as 'ALGORITHM:value', e.g. 'ADLER32:0a1b2c3d', or give only the algorithm."
    if not isinstance(checksum, str) or not checksum:
        return f"must be a non-empty string, not {checksum!r}.", example
    algorithm, colon, value = checksum.partition(":")
    if not _ALGORITHM.fullmatch(algorithm):
        return f"{checksum!r} does not start with an algorithm name.", example
    if not colon:
        if _HEX.fullmatch(algorithm):
            return (
                f"{checksum!r} looks like a checksum value without its algorithm; FTS "
                "would take it as the algorithm's name.",
                f"Write 'ADLER32:{checksum}' (or the algorithm it was computed with).",
            )
        return None
    if not _HEX.fullmatch(value):
        return f"the value {value!r} of {checksum!r} is not hexadecimal.", example
    digits = CHECKSUM_DIGITS.get(algorithm.lower())
    if digits is not None and len(value) not in digits:
        expected = f"{digits[0]}" if len(digits) == 1 else f"{digits[0]} to {digits[-1]}"
        fix = example
        if algorithm.lower() == "adler32" and len(value) < 8:
            fix = f"Left-pad it with zeros: '{algorithm}:{value.zfill(8)}'."
        return f"a {algorithm} value has {expected} hex digits; {value!r} has {len(value)}.", fix
    return None


def _token_tuple(tokens: object, where: str, urls: tuple[str, ...], kind: str) -> tuple[str, ...]:
    # Tokens are secrets: no message here ever shows one.
    if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
        raise FTSValidationError(
            where, f"must be a list of tokens, one per {kind}.", "Give a list of str."
        )
    if len(tokens) != len(urls):
        raise FTSValidationError(
            where,
            f"has {len(tokens)} tokens for {len(urls)} {kind}s; FTS needs one per {kind}.",
            f"Give exactly one token per {kind}, in the same order.",
        )
    for position, token in enumerate(tokens):
        if not isinstance(token, str) or not token:
            raise FTSValidationError(
                f"{where}[{position}]", "is empty or not a string.", "Give every token."
            )
    return tuple(tokens)


@dataclass(frozen=True, slots=True)
class Transfer:
    """One ``files[]`` entry: a file copied from one of ``sources`` to ``destinations``.

    Several sources make a multiple-replica transfer (FTS picks one by
    ``selection_strategy``). For staging only, give the same URL as source and
    destination. Checked when built; metadata sizes are checked by
    :func:`build_submission`, which knows the server's limits.
    """

    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    checksum: str | None = None
    filesize: int | None = None
    metadata: dict | str | None = None
    activity: str | None = None
    selection_strategy: str | None = None
    scitag: int | None = None
    staging_metadata: dict | None = None
    archive_metadata: dict | None = None
    source_tokens: tuple[str, ...] | None = field(default=None, repr=False)
    destination_tokens: tuple[str, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        where = _TRANSFER
        sources = _url_tuple(self.sources, f"{where}.sources", "source")
        destinations = _url_tuple(self.destinations, f"{where}.destinations", "destination")
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "destinations", destinations)
        if self.checksum is not None and (problem := _checksum_problem(self.checksum)):
            raise FTSValidationError(f"{where}.checksum", *problem)
        if self.filesize is not None and not (_is_int(self.filesize) and self.filesize >= 0):
            raise FTSValidationError(
                f"{where}.filesize",
                f"must be a size in bytes (an int >= 0), not {self.filesize!r}.",
                "Give the expected size in bytes, or leave it out.",
            )
        if self.metadata is not None and not isinstance(self.metadata, (dict, str)):
            raise FTSValidationError(
                f"{where}.metadata",
                f"must be a dict or a str, not {type(self.metadata).__name__}.",
                "Wrap it in a dict, e.g. {'items': [...]}.",
            )
        for name in ("staging_metadata", "archive_metadata"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                raise FTSValidationError(
                    f"{where}.{name}",
                    "must be a dict (FTS rejects anything else).",
                    "Give the metadata as a dict.",
                )
        self._check_labels(where)
        self._check_tokens(where, sources, destinations)

    def _check_labels(self, where: str) -> None:
        activity = self.activity
        if activity is not None and not (
            isinstance(activity, str) and 0 < len(activity) <= MAX_ACTIVITY_LENGTH
        ):
            raise FTSValidationError(
                f"{where}.activity",
                f"must be a non-empty string of at most {MAX_ACTIVITY_LENGTH} characters.",
                "Use your VO's activity share name, or leave it out for 'default'.",
            )
        strategy = self.selection_strategy
        if strategy is not None and not (
            isinstance(strategy, str) and strategy in SELECTION_STRATEGIES
        ):
            raise FTSValidationError(
                f"{where}.selection_strategy",
                f"{strategy!r} is not a strategy FTS knows (give one name).",
                f"Use one of: {', '.join(sorted(SELECTION_STRATEGIES))}.",
            )
        if self.scitag is not None and not (_is_int(self.scitag) and self.scitag in SCITAG_RANGE):
            raise FTSValidationError(
                f"{where}.scitag",
                f"must be an int from {SCITAG_RANGE[0]} to {SCITAG_RANGE[-1]}, "
                f"not {self.scitag!r}.",
                "Use experiment_id << 6 | activity_id from https://www.scitags.org.",
            )

    def _check_tokens(
        self, where: str, sources: tuple[str, ...], destinations: tuple[str, ...]
    ) -> None:
        if self.source_tokens is None and self.destination_tokens is None:
            return
        if self.source_tokens is None or self.destination_tokens is None:
            missing = "source_tokens" if self.source_tokens is None else "destination_tokens"
            raise FTSValidationError(
                f"{where}.{missing}",
                "is missing; FTS needs both token lists or neither.",
                "Give both lists, or neither to let FTS use the submitting token everywhere.",
            )
        source_tokens = _token_tuple(
            self.source_tokens, f"{where}.source_tokens", sources, "source"
        )
        object.__setattr__(self, "source_tokens", source_tokens)
        destination_tokens = _token_tuple(
            self.destination_tokens, f"{where}.destination_tokens", destinations, "destination"
        )
        object.__setattr__(self, "destination_tokens", destination_tokens)

    @classmethod
    def coerce(cls, obj: Transfer | Mapping[str, Any] | tuple | list, index: int = 0) -> Transfer:
        """A :class:`Transfer` from what a user may write.

        Accepts a Transfer; a ``(source, destination)`` pair (each a URL or a list of
        URLs); or a dict with ``source``/``destination`` (one URL each) or
        ``sources``/``destinations`` (lists) plus the optional fields. Errors name
        ``transfers[index]``; unknown dict keys are refused (a typo would be lost).
        """
        if isinstance(obj, Transfer):
            return obj
        where = f"transfers[{index}]"
        try:
            if isinstance(obj, Mapping):
                return cls(**_transfer_fields(obj, where))
            if isinstance(obj, (tuple, list)) and len(obj) == 2:
                source, destination = obj
                return cls(_as_urls(source), _as_urls(destination))
        except FTSValidationError as error:
            raise _renamed(error, where) from None
        raise FTSValidationError(
            where,
            f"is a {type(obj).__name__}; a transfer is a dict, a (source, destination) pair "
            "or a Transfer.",
            "Write {'source': 'davs://...', 'destination': 'davs://...'}.",
        )

    def to_json(self) -> dict[str, Any]:
        """The ``files[]`` entry, with only the keys that are set."""
        entry: dict[str, Any] = {
            "sources": list(self.sources),
            "destinations": list(self.destinations),
        }
        for name in _OPTIONAL_TRANSFER_FIELDS:
            value = getattr(self, name)
            if value is not None:
                entry[name] = list(value) if isinstance(value, tuple) else value
        return entry


_OPTIONAL_TRANSFER_FIELDS = tuple(f.name for f in fields(Transfer))[2:]
_TRANSFER_KEYS = frozenset(f.name for f in fields(Transfer)) | {"source", "destination"}


def _renamed(error: FTSValidationError, where: str) -> FTSValidationError:
    field_name = error.field
    if field_name.startswith(_TRANSFER + "."):
        field_name = where + field_name[len(_TRANSFER) :]
    return FTSValidationError(field_name, error.problem, error.fix)


def _as_urls(value: object) -> object:
    return (value,) if isinstance(value, str) else value


def _transfer_fields(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = obj.keys() - _TRANSFER_KEYS
    if unknown:
        name = sorted(map(str, unknown))[0]
        raise FTSValidationError(
            f"{where}.{name}", "is not a transfer field.", _suggestion(name, _TRANSFER_KEYS)
        )
    kwargs = {key: value for key, value in obj.items() if value is not None}
    for singular, plural in (("source", "sources"), ("destination", "destinations")):
        if singular in kwargs and plural in kwargs:
            raise FTSValidationError(
                f"{where}.{singular}", f"is given together with '{plural}'.", "Use one."
            )
        if singular in kwargs:
            value = kwargs.pop(singular)
            if not isinstance(value, str):
                raise FTSValidationError(
                    f"{where}.{singular}", "must be one URL string.", f"Use '{plural}' for a list."
                )
            kwargs[plural] = (value,)
        elif plural not in kwargs:
            raise FTSValidationError(
                f"{where}.{plural}",
                "is missing.",
                f"Give '{singular}' (one URL) or '{plural}' (a list of URLs).",
            )
    return kwargs


# -- job parameters -------------------------------------------------------------------------


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
    if not _is_int(value) or value <= 0:
        raise FTSValidationError(
            where, f"must be an int > 0, not {value!r}.", "Leave it out for the default."
        )
    return value


def _whole_seconds(where: str, value: object) -> int | None:
    """Seconds of an int or a timedelta; ``None`` if it is neither."""
    if _is_int(value):
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
    if not _is_int(value) or value < -1:
        raise FTSValidationError(
            where,
            f"must be an int >= -1, not {value!r}.",
            "Use -1 for no retries, 0 for the server's default, or N > 0 for N retries.",
        )
    return value


def _priority(where: str, value: object) -> int:
    if not _is_int(value) or value not in PRIORITY_RANGE:
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
    elif _is_int(value):
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
    """Every job parameter FTS reads (REFERENCE 3.2), in the server's units.

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
        _TRANSFER_KEYS - {"sources", "destinations", "source", "destination", "metadata"},
        ("is not a job parameter.", _PER_TRANSFER),
    ),
}


def _suggestion(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if close:
        return f"Did you mean '{close[0]}'?"
    return f"Known names: {', '.join(sorted(known))}."


def _unknown_param(name: str) -> FTSValidationError:
    problem, fix = _PARAM_HINTS.get(
        name, ("is not a job parameter.", _suggestion(name, _PARAM_NAMES))
    )
    return FTSValidationError(f"job_params.{name}", problem, fix)


# -- the whole document ---------------------------------------------------------------------


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
    """
    if isinstance(transfers, (str, Mapping, Transfer)):
        raise FTSValidationError(
            "transfers",
            f"is a single {type(transfers).__name__}, not a list of transfers.",
            "Wrap it in a list: [transfer].",
        )
    params = JobParams.from_mapping(job_params)
    files = [Transfer.coerce(transfer, index) for index, transfer in enumerate(transfers)]
    if not files:
        raise FTSValidationError(
            "transfers", "is empty; a job needs at least one transfer.", "Give the transfers."
        )
    _check_job_shape(files, params)
    entries = [_entry(transfer, index, metadata_limits) for index, transfer in enumerate(files)]
    if params.job_metadata is not None:
        _check_size(
            params.job_metadata,
            "job_params.job_metadata",
            metadata_limits.job,
            "JobMetadataSizeLimit",
        )
    return {"files": entries, "params": params.to_json()}


def _entry(transfer: Transfer, index: int, limits: MetadataLimits) -> dict[str, Any]:
    for name, limit, setting in (
        ("metadata", limits.file, "FileMetadataSizeLimit"),
        ("staging_metadata", limits.staging, "StagingMetadataSizeLimit"),
        ("archive_metadata", limits.archive, "ArchiveMetadataSizeLimit"),
    ):
        value = getattr(transfer, name)
        if value is not None:
            _check_size(value, f"transfers[{index}].{name}", limit, setting)
    return transfer.to_json()


def _check_job_shape(files: list[Transfer], params: JobParams) -> None:
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


def _check_multihop(files: list[Transfer]) -> None:
    if len(files) < 2:
        raise FTSValidationError(
            "job_params.multihop",
            "needs at least two transfers (the hops, in order); there is one.",
            "Add the hops, or drop multihop.",
        )
    for index, transfer in enumerate(files):
        for name in ("sources", "destinations"):
            if len(getattr(transfer, name)) != 1:
                raise FTSValidationError(
                    f"transfers[{index}].{name}",
                    "must hold exactly one URL in a multihop job.",
                    "Give one source and one destination per hop.",
                )


def _check_replicas(files: list[Transfer], params: JobParams) -> None:
    for index, transfer in enumerate(files):
        if len(transfer.sources) == 1:
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


def _storage(url: str) -> str:
    match = _URL.fullmatch(url)
    assert match is not None  # every URL was validated when its Transfer was built
    return f"{match[1].lower()}://{_host(match[2]).lower()}"


def _check_reuse(files: list[Transfer]) -> None:
    source, destination = _storage(files[0].sources[0]), _storage(files[0].destinations[0])
    for index, transfer in enumerate(files):
        for name, urls, expected in (
            ("sources", transfer.sources, source),
            ("destinations", transfer.destinations, destination),
        ):
            for position, url in enumerate(urls):
                if _storage(url) != expected:
                    raise FTSValidationError(
                        f"transfers[{index}].{name}[{position}]",
                        f"is on {_storage(url)}, but a reuse job must use one storage "
                        f"({expected}) on this side.",
                        "Split the job by storage, or drop reuse.",
                    )


def _check_tape_destinations(files: list[Transfer], first_index: int) -> None:
    for index in range(first_index, len(files)):
        for position, url in enumerate(files[index].destinations):
            if url.partition(":")[0].lower() not in OVERWRITE_ON_DISK_SCHEMES:
                raise FTSValidationError(
                    f"transfers[{index}].destinations[{position}]",
                    f"{_shown(url)} is not https:// or davs://, which "
                    "overwrite_when_only_on_disk needs (the Tape REST API).",
                    "Use the storage's https/davs endpoint, or drop the flag.",
                )


def _check_tokens_everywhere_or_nowhere(files: list[Transfer]) -> None:
    with_tokens = [transfer.source_tokens is not None for transfer in files]
    if any(with_tokens) and not all(with_tokens):
        index = with_tokens.index(not with_tokens[0])
        raise FTSValidationError(
            f"transfers[{index}].source_tokens",
            "is given for some transfers of the job but not for others.",
            "Give tokens for every transfer, or for none.",
        )


def _check_unique_destinations(files: list[Transfer]) -> None:
    seen: set[str] = set()
    for index, transfer in enumerate(files):
        for position, url in enumerate(transfer.destinations):
            if url in seen:
                raise FTSValidationError(
                    f"transfers[{index}].destinations[{position}]",
                    f"{_shown(url)} is the destination of an earlier transfer of this job; "
                    "the copies would overwrite each other.",
                    "Remove the duplicate transfer.",
                )
            seen.add(url)
