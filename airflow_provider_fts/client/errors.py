"""One small exception tree for everything the FTS client can report.

Local problems (bad input, unusable credentials) are raised before any request and
say which field is wrong and how to fix it. Server answers are mapped to exceptions
in exactly one place, :func:`error_from_response`, whatever shape the body has:

* JSON ``{"status": "400 Bad Request", "message": "..."}`` from the Flask app;
* per-job ``{"job_id", "http_status", "http_message"}`` from ``/jobs/<id>``;
* the HTML pages of the authentication middleware (and 503 pages of overloaded hosts).
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable
from typing import Any

__all__ = [
    "AmbiguousSubmission",
    "BadRequest",
    "Conflict",
    "FTSConnectionError",
    "FTSCredentialError",
    "FTSError",
    "FTSHTTPError",
    "FTSValidationError",
    "NeedsDelegation",
    "NotAuthorised",
    "NotFound",
    "ServerCertificateError",
    "ServerError",
    "TryAgain",
    "error_from_response",
    "find_cause",
    "is_transient",
    "verification_failure",
]


class FTSError(Exception):
    """Base class of every error raised by this package's FTS client."""


class FTSValidationError(FTSError, ValueError):
    """Input rejected locally, before any request: names the field and the fix."""

    def __init__(self, field: str, problem: str, fix: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        message = f"{field}: {problem}"
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)


class FTSCredentialError(FTSValidationError):
    """A credential that cannot be used (expired proxy, key not matching, missing CA)."""


class FTSConnectionError(FTSError):
    """No usable HTTP answer: refused or reset connection, TLS failure, timeout, or a body
    cut short (after retries).

    ``maybe_sent`` is False when the request surely never reached the server (no
    connection was made), so even a submission may be sent again.
    """

    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class ServerCertificateError(FTSConnectionError):
    """The server's certificate failed verification: not a passing fault, so never retried.

    The message names the CAs in use and how to point the client at the right ones.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_sent=False)


class AmbiguousSubmission(FTSConnectionError):
    """A submission was sent but no answer came back, so FTS may or may not hold the job.

    ``expected_job_id`` is the id the job has if it was stored (deterministic ids), so a
    caller can look it up instead of submitting again (the failover across servers does).
    """

    def __init__(self, message: str, expected_job_id: str | None = None) -> None:
        super().__init__(message)
        self.expected_job_id = expected_job_id


class FTSHTTPError(FTSError):
    """FTS answered with an error status."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"FTS answered {status}{where}: {message}")


class BadRequest(FTSHTTPError):
    """400 (and other 4xx such as 405): the server refused the request as malformed."""


class NotAuthorised(FTSHTTPError):
    """401/403: the credential is not allowed to do this (or is not recognised)."""


class NotFound(FTSHTTPError):
    """404: no such job, field, delegation or route."""


class Conflict(FTSHTTPError):
    """409: duplicate submission (``sid`` already used)."""


class NeedsDelegation(FTSHTTPError):
    """419: FTS has no delegated proxy for us, or it expired or has under one hour left."""


class ServerError(FTSHTTPError):
    """5xx: a fault on the server side."""


class TryAgain(ServerError):
    """502/503/504: the service is overloaded or restarting; the request may be retried."""


def is_transient(error: FTSError) -> bool:
    """Whether ``error`` is a fault that may pass, so asking again may succeed.

    A connection failure (no answer, a reset, a timeout, a body cut short) or a 502/503/504.
    Not a bad server certificate, and not a 500: FTS answers 500 for its own bugs (and for
    an ignored token on a job read), which asking again does not cure.
    """
    if isinstance(error, ServerCertificateError):
        return False
    return isinstance(error, FTSConnectionError | TryAgain)


_BY_STATUS: dict[int, type[FTSHTTPError]] = {
    401: NotAuthorised,
    403: NotAuthorised,
    404: NotFound,
    409: Conflict,
    419: NeedsDelegation,
    502: TryAgain,
    503: TryAgain,
    504: TryAgain,
}

_HTML_TAG = re.compile(r"<[^>]+>")
_WHITESPACE = re.compile(r"\s+")
_MAX_MESSAGE = 500


def error_class_for(status: int) -> type[FTSHTTPError]:
    """The exception class for an HTTP status code."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return BadRequest


def message_from_body(body: str | bytes | None, content_type: str = "") -> str:
    """The human message of an error body, whatever its shape."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    body = (body or "").strip()
    if not body:
        return ""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for key in ("message", "http_message"):
            if parsed.get(key):
                return str(parsed[key])
        if parsed.get("http_status"):
            return str(parsed["http_status"])
    if isinstance(parsed, str):
        return parsed
    if "html" in content_type.lower() or body.lstrip().startswith("<"):
        # Werkzeug pages: the <p> holds the description; the <title> the status.
        paragraph = re.search(r"<p>(.*?)</p>", body, re.S | re.I)
        text = paragraph.group(1) if paragraph else body
        body = _WHITESPACE.sub(" ", _HTML_TAG.sub(" ", text)).strip()
    return body[:_MAX_MESSAGE]


def error_from_response(
    status: int,
    body: str | bytes | None,
    content_type: str = "",
    *,
    method: str = "",
    path: str = "",
) -> FTSHTTPError:
    """Map any FTS error answer to the exception that describes it."""
    message = message_from_body(body, content_type) or f"HTTP {status}"
    return error_class_for(status)(status, message, method=method, path=path)


def error_from_job_entry(entry: dict, *, method: str = "", path: str = "") -> FTSHTTPError:
    """Map a per-job error entry (``{"job_id", "http_status", "http_message"}``)."""
    status_text = str(entry.get("http_status", ""))
    try:
        status = int(status_text.split()[0])
    except (IndexError, ValueError):
        status = 500
    message = entry.get("http_message") or status_text
    return error_class_for(status)(status, str(message), method=method, path=path)


def is_job_error_entry(entry: object) -> bool:
    """True for a per-job error entry of a multi-id answer (not a job object)."""
    if not isinstance(entry, dict) or "job_state" in entry:
        return False
    status = str(entry.get("http_status", ""))
    return bool(status) and not status.startswith(("200", "304"))


def find_cause(error: BaseException, test: Callable[[BaseException], bool]) -> Any:
    """The first of ``error`` and its causes that passes ``test``, or None.

    requests/urllib3 nest the cause in args and ``reason``; httpx in the context.
    """
    seen: set[int] = set()
    stack: list[Any] = [error]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if test(current):
            return current
        stack.extend((current.__cause__, current.__context__, getattr(current, "reason", None)))
        stack.extend(current.args)
    return None


def verification_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error somewhere in an error's causes, if any."""
    return find_cause(error, lambda e: isinstance(e, ssl.SSLCertVerificationError))
