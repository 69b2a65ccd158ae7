"""One ``files[]`` entry of a job: :class:`Transfer` and every rule about a single file.

A user writes a transfer as a dict, a ``(source, destination)`` pair or a
:class:`Transfer`; :func:`transfer_entry` reads any of them into the JSON entry, checking
each rule once. Errors are raised naming ``transfer.<field>`` and renamed to
``transfers[<index>].<field>`` by :func:`transfer_entry`, so the index costs nothing on
the way when nothing is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from airflow_provider_fts.client.checks import is_int, suggestion
from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.urls import url_list

__all__ = ["TRANSFER_KEYS", "Transfer", "transfer_entry"]

MAX_ACTIVITY_LENGTH = 255  # t_file.activity
SCITAG_RANGE = range(65, 65536)
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
#: Hex digits of the values of the algorithms we know (CRC32 is written in hex or decimal).
CHECKSUM_DIGITS = {"adler32": range(8, 9), "md5": range(32, 33), "crc32": range(1, 11)}

_ALGORITHM = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_HEX = re.compile(r"[0-9A-Fa-f]+")
#: Only checksums the rules of _checksum_problem accept, the usual ones (a shortcut).
_PLAINLY_GOOD_CHECKSUM = re.compile(
    r"(?:adler32:[0-9a-f]{8}|md5:[0-9a-f]{32}|crc32:[0-9a-f]{1,10})", re.IGNORECASE | re.ASCII
)

_TRANSFER = "transfer"  # field prefix of a Transfer on its own; transfer_entry names the index
_NOTHING: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Transfer:
    """One ``files[]`` entry: a file copied from one of ``sources`` to ``destinations``.

    Several sources make a multiple-replica transfer (FTS picks one by
    ``selection_strategy``). For staging only, give the same URL as source and
    destination. Checked when built; metadata sizes are checked by
    :func:`~airflow_provider_fts.client.submission.build_submission`, which knows the
    server's limits.
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
        entry = _checked_entry(self.sources, self.destinations, self._field)
        for name in ("sources", "destinations", "source_tokens", "destination_tokens"):
            if name in entry:
                object.__setattr__(self, name, tuple(entry[name]))

    def _field(self, name: str) -> Any:
        return getattr(self, name)

    @classmethod
    def coerce(cls, obj: Transfer | Mapping[str, Any] | tuple | list, index: int = 0) -> Transfer:
        """A :class:`Transfer` from what a user may write.

        Accepts a Transfer; a ``(source, destination)`` pair (each a URL or a list of
        URLs); or a dict with ``source``/``destination`` (one URL each) or
        ``sources``/``destinations`` (lists) plus the optional fields. Errors name
        ``transfers[index]``; unknown dict keys are refused (a typo would be lost).

        :param obj: the transfer as written.
        :param index: its position in the job, for error messages.
        """
        if isinstance(obj, Transfer):
            return obj
        return cls(**transfer_entry(obj, index))

    def to_json(self) -> dict[str, Any]:
        """The ``files[]`` entry, with only the keys that are set."""
        entry: dict[str, Any] = {
            "sources": list(self.sources),
            "destinations": list(self.destinations),
        }
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                entry[name] = list(value) if isinstance(value, tuple) else value
        return entry


_OPTIONAL_FIELDS = tuple(f.name for f in fields(Transfer))[2:]
#: Every key a transfer dict may have.
TRANSFER_KEYS = frozenset(f.name for f in fields(Transfer)) | {"source", "destination"}


def transfer_entry(obj: object, index: int) -> dict[str, Any]:
    """The ``files[]`` entry of one transfer as a user wrote it, every per-file rule checked.

    :param obj: a dict, a ``(source, destination)`` pair or a :class:`Transfer`.
    :param index: its position in the job; errors name ``transfers[index]``.
    """
    try:
        if type(obj) is dict or isinstance(obj, Mapping):
            sources, destinations = _mapping_urls(obj)
            return _checked_entry(sources, destinations, obj.get)
        if isinstance(obj, Transfer):
            return obj.to_json()
        if isinstance(obj, (tuple, list)) and len(obj) == 2:
            source, destination = obj
            return _checked_entry(_as_urls(source), _as_urls(destination), _NOTHING.get)
    except FTSValidationError as error:
        raise _renamed(error, f"transfers[{index}]") from None
    raise FTSValidationError(
        f"transfers[{index}]",
        f"is a {type(obj).__name__}; a transfer is a dict, a (source, destination) pair "
        "or a Transfer.",
        "Write {'source': 'davs://...', 'destination': 'davs://...'}.",
    )


def _renamed(error: FTSValidationError, where: str) -> FTSValidationError:
    field_name = error.field
    if field_name.startswith(_TRANSFER + "."):
        field_name = where + field_name[len(_TRANSFER) :]
    return FTSValidationError(field_name, error.problem, error.fix)


def _as_urls(value: object) -> object:
    return (value,) if isinstance(value, str) else value


def _mapping_urls(obj: Mapping[str, Any]) -> tuple[object, object]:
    """The sources and destinations of a transfer dict, given singular or plural."""
    if not obj.keys() <= TRANSFER_KEYS:
        name = sorted(map(str, obj.keys() - TRANSFER_KEYS))[0]
        raise FTSValidationError(
            f"{_TRANSFER}.{name}", "is not a transfer field.", suggestion(name, TRANSFER_KEYS)
        )
    get = obj.get
    source, destination = get("source"), get("destination")
    if (
        type(source) is str
        and type(destination) is str
        and get("sources") is None
        and get("destinations") is None
    ):
        return (source,), (destination,)  # the usual dict, plainly right (see _side)
    return _side(obj, "source", "sources"), _side(obj, "destination", "destinations")


def _side(obj: Mapping[str, Any], singular: str, plural: str) -> object:
    one, many = obj.get(singular), obj.get(plural)  # None counts as not given
    if one is None:
        if many is None:
            raise FTSValidationError(
                f"{_TRANSFER}.{plural}",
                "is missing.",
                f"Give '{singular}' (one URL) or '{plural}' (a list of URLs).",
            )
        return many
    if many is not None:
        raise FTSValidationError(
            f"{_TRANSFER}.{singular}", f"is given together with '{plural}'.", "Use one."
        )
    if not isinstance(one, str):
        raise FTSValidationError(
            f"{_TRANSFER}.{singular}", "must be one URL string.", f"Use '{plural}' for a list."
        )
    return (one,)


# -- the rules of one file, in the order they are checked ----------------------------------
# Each rule is written once, in a _check_* function; the conditions before the calls only
# skip a call for a value that plainly passes it (the common case, kept fast).


def _checked_entry(
    sources: object, destinations: object, get: Callable[[str], Any]
) -> dict[str, Any]:
    """Every per-file rule, in order; the JSON entry with only the keys that are set.

    :param sources: the source URLs as given.
    :param destinations: the destination URLs as given.
    :param get: the value of an optional field by name, ``None`` when not given.
    """
    entry: dict[str, Any] = {
        "sources": url_list(sources, "transfer.sources", "source"),
        "destinations": url_list(destinations, "transfer.destinations", "destination"),
    }
    checksum, filesize, metadata = get("checksum"), get("filesize"), get("metadata")
    staging, archive = get("staging_metadata"), get("archive_metadata")
    activity, strategy, scitag = get("activity"), get("selection_strategy"), get("scitag")
    if checksum is not None and not (
        type(checksum) is str and _PLAINLY_GOOD_CHECKSUM.fullmatch(checksum)
    ):
        _check_checksum(checksum)
    if filesize is not None and not (type(filesize) is int and filesize >= 0):
        _check_filesize(filesize)
    if (
        staging is not None
        or archive is not None
        or not (metadata is None or type(metadata) is dict)
    ):
        _check_metadata_types(metadata, staging, archive)
    if activity is not None or strategy is not None or scitag is not None:
        _check_labels(activity, strategy, scitag)
    source_tokens, destination_tokens = get("source_tokens"), get("destination_tokens")
    if source_tokens is not None or destination_tokens is not None:
        _check_tokens(entry, source_tokens, destination_tokens)
    # In the order of Transfer's fields, as Transfer.to_json writes them.
    if checksum is not None:
        entry["checksum"] = checksum
    if filesize is not None:
        entry["filesize"] = filesize
    if metadata is not None:
        entry["metadata"] = metadata
    if activity is not None or strategy is not None or scitag is not None:
        _add_labels(entry, activity, strategy, scitag)
    if staging is not None:
        entry["staging_metadata"] = staging
    if archive is not None:
        entry["archive_metadata"] = archive
    if source_tokens is not None:  # both or neither, checked above
        entry["source_tokens"] = list(source_tokens)
        entry["destination_tokens"] = list(destination_tokens)
    return entry


def _add_labels(entry: dict[str, Any], activity: Any, strategy: Any, scitag: Any) -> None:
    for name, value in (
        ("activity", activity),
        ("selection_strategy", strategy),
        ("scitag", scitag),
    ):
        if value is not None:
            entry[name] = value


def _check_checksum(checksum: object) -> None:
    example = "Write it as 'ALGORITHM:value', e.g. 'ADLER32:0a1b2c3d', or give only the algorithm."
    problem = _checksum_problem(checksum, example)
    if problem is not None:
        raise FTSValidationError("transfer.checksum", *problem)


def _checksum_problem(checksum: object, example: str) -> tuple[str, str] | None:
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


def _check_filesize(filesize: object) -> None:
    if not (is_int(filesize) and filesize >= 0):
        raise FTSValidationError(
            "transfer.filesize",
            f"must be a size in bytes (an int >= 0), not {filesize!r}.",
            "Give the expected size in bytes, or leave it out.",
        )


def _check_metadata_types(metadata: object, staging: object, archive: object) -> None:
    if metadata is not None and not isinstance(metadata, (dict, str)):
        raise FTSValidationError(
            "transfer.metadata",
            f"must be a dict or a str, not {type(metadata).__name__}.",
            "Wrap it in a dict, e.g. {'items': [...]}.",
        )
    for name, value in (("staging_metadata", staging), ("archive_metadata", archive)):
        if value is not None and not isinstance(value, dict):
            raise FTSValidationError(
                f"transfer.{name}",
                "must be a dict (FTS rejects anything else).",
                "Give the metadata as a dict.",
            )


def _check_labels(activity: object, strategy: object, scitag: object) -> None:
    if activity is not None and not (
        isinstance(activity, str) and 0 < len(activity) <= MAX_ACTIVITY_LENGTH
    ):
        raise FTSValidationError(
            "transfer.activity",
            f"must be a non-empty string of at most {MAX_ACTIVITY_LENGTH} characters.",
            "Use your VO's activity share name, or leave it out for 'default'.",
        )
    if strategy is not None and not (
        isinstance(strategy, str) and strategy in SELECTION_STRATEGIES
    ):
        raise FTSValidationError(
            "transfer.selection_strategy",
            f"{strategy!r} is not a strategy FTS knows (give one name).",
            f"Use one of: {', '.join(sorted(SELECTION_STRATEGIES))}.",
        )
    if scitag is not None and not (is_int(scitag) and scitag in SCITAG_RANGE):
        raise FTSValidationError(
            "transfer.scitag",
            f"must be an int from {SCITAG_RANGE[0]} to {SCITAG_RANGE[-1]}, not {scitag!r}.",
            "Use experiment_id << 6 | activity_id from https://www.scitags.org.",
        )


def _check_tokens(entry: dict[str, Any], source_tokens: object, destination_tokens: object) -> None:
    # Tokens are secrets: no message here ever shows one.
    if source_tokens is None or destination_tokens is None:
        missing = "source_tokens" if source_tokens is None else "destination_tokens"
        raise FTSValidationError(
            f"transfer.{missing}",
            "is missing; FTS needs both token lists or neither.",
            "Give both lists, or neither to let FTS use the submitting token everywhere.",
        )
    _check_token_list(source_tokens, "transfer.source_tokens", entry["sources"], "source")
    _check_token_list(
        destination_tokens, "transfer.destination_tokens", entry["destinations"], "destination"
    )


def _check_token_list(tokens: object, where: str, urls: list[str], kind: str) -> None:
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
