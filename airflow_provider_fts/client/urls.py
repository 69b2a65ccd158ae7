"""What makes a transfer URL acceptable to FTS, and how a URL is shown in an error.

A URL needs a scheme, a host and a path; ``file://`` is refused (FTS copies between
storage endpoints only), and so are whitespace and URLs longer than the database column.
:func:`url_problem` names the problem of one URL, or answers ``None``;
:func:`url_list` checks one side of a transfer and raises :class:`FTSValidationError`.
"""

from __future__ import annotations

import re

from airflow_provider_fts.client.errors import FTSValidationError

__all__ = ["MAX_URL_LENGTH", "netloc", "shown", "storage", "url_list", "url_problem"]

MAX_URL_LENGTH = 1100  # t_file.source_surl / dest_surl are VARCHAR(1100)

_EXAMPLE_URL = "davs://storage.example.org/path/file"
#: scheme://authority/path?query#fragment, the pieces the rules below look at.
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#\s]*)(/[^?#\s]*)?(\?[^#\s]*)?(?:#\S*)?")
#: Only URLs the rules of url_problem accept: a shortcut, one match instead of the rules.
#: Not file:, a host that starts the authority (no user@, no [IPv6]), a path longer than
#: "/". Other URLs, right or wrong, take the long way through the rules. Possessive
#: quantifiers (each stops where the next part's first character begins) save the regex
#: engine its backtracking notes.
_PLAINLY_GOOD = re.compile(
    r"(?![Ff][Ii][Ll][Ee]:)[A-Za-z][A-Za-z0-9+.-]*+://"
    r"[^/?#\s@:\[][^/?#\s@]*+/[^?#\s]++(?:\?[^#\s]*+)?+(?:#\S*+)?+"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_WHITESPACE = re.compile(r"\s")


def url_list(urls: object, where: str, singular: str) -> list[str]:
    """The URLs of one side of a transfer as a list, every URL rule checked.

    Raises :class:`FTSValidationError` naming ``where`` or ``where[position]``.

    :param urls: the URLs as given (a list or tuple of str, if right).
    :param where: the field, e.g. ``transfer.sources``.
    :param singular: the field's one-URL name, for the fix, e.g. ``source``.
    """
    if type(urls) is list or type(urls) is tuple:
        plainly_good = _PLAINLY_GOOD.fullmatch
        for url in urls:
            if not (type(url) is str and len(url) <= MAX_URL_LENGTH and plainly_good(url)):
                break
        else:
            if urls:
                return list(urls)
    return _checked_url_list(urls, where, singular)


def _checked_url_list(urls: object, where: str, singular: str) -> list[str]:
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
        problem = url_problem(url)
        if problem is not None:
            raise FTSValidationError(f"{where}[{position}]", *problem)
    return list(urls)


def url_problem(url: object) -> tuple[str, str] | None:
    """What is wrong with a transfer URL as FTS sees it: ``(problem, fix)``, or ``None``.

    The rules, one by one, in the order their messages are meant to be read.

    :param url: the URL as the user gave it (any type).
    """
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
            f"{shown(url)} has no host.",
            f"Write it as scheme://host/path, e.g. {_EXAMPLE_URL}.",
        )
    if not path or (path == "/" and not query):
        return f"{shown(url)} has no path.", f"Add the file's path, e.g. {_EXAMPLE_URL}."
    return None


def shown(url: str) -> str:
    """A URL fit for an error message: queries may hold signatures, so they are cut.

    :param url: the URL to show.
    """
    base, has_query, _ = url.partition("?")
    base = base if len(base) <= 120 else base[:117] + "..."
    return repr(base + ("?..." if has_query else ""))


def netloc(host: str, port: int | None = None) -> str:
    """``host[:port]`` as a URL writes it: an IPv6 literal in brackets, no port if None.

    :param host: a host name or address, without brackets (``urlsplit(...).hostname``).
    :param port: the port, or None.
    """
    bracketed = f"[{host}]" if ":" in host else host
    return f"{bracketed}:{port}" if port else bracketed


def storage(url: str) -> str:
    """``scheme://host`` of a URL that passed :func:`url_problem`, both lower-cased.

    :param url: a valid transfer URL.
    """
    match = _URL.fullmatch(url)
    assert match is not None  # every URL was validated when its transfer was read
    return f"{match[1].lower()}://{_host(match[2]).lower()}"


def _host(authority: str) -> str:
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):
        return host_port[1 : host_port.find("]")] if "]" in host_port else ""
    return host_port.partition(":")[0]


def _malformed_url_problem(url: str) -> tuple[str, str]:
    if _WHITESPACE.search(url):
        return (
            f"{shown(url)} contains whitespace.",
            "Remove it (strip the URL) or percent-encode a space inside a path as %20.",
        )
    scheme, colon, _ = url.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        return f"{shown(url)} has no scheme.", f"Write the full URL, e.g. {_EXAMPLE_URL}."
    if scheme.lower() == "file":
        return _local_file_problem(url)
    return f"{shown(url)} has no host.", f"Write it as scheme://host/path, e.g. {_EXAMPLE_URL}."


def _local_file_problem(url: str) -> tuple[str, str]:
    return (
        f"{shown(url)} is a local file; FTS only copies between storage endpoints.",
        "Upload it to a storage endpoint first, or use that endpoint's URL.",
    )
