"""The emulator's route table and replies: which handler answers which request, and how.

The table is fts-rest-flask 3.13's (``config/routing/base.py``), with Werkzeug's matching
order: literal segments first. Handlers live in :mod:`.service`; answers are
:class:`Reply` objects that the HTTPS layer (:mod:`.httpd`) writes out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_fts.testing.identity import Identity
from airflow_provider_fts.testing.records import HTTPError, reason_phrase

__all__ = [
    "Call",
    "Reply",
    "allow_header",
    "error_reply",
    "html_error_reply",
    "json_reply",
    "resolve",
]

JSON = "application/json"


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(value: Any, status: int = 200) -> Reply:
    return Reply(status, _dumps(value))


def error_reply(status: int, message: str) -> Reply:
    """The generic Flask error body: ``{"status": "404 Not Found", "message": ...}``."""
    return json_reply(HTTPError(status, message).body(), status)


def html_error_reply(status: int, message: str) -> Reply:
    """A Werkzeug HTML error page, as the authentication middleware sends."""
    reason = reason_phrase(status)
    page = (
        f"<!doctype html>\n<html lang=en>\n<title>{status} {reason}</title>\n"
        f"<h1>{reason}</h1>\n<p>{message}</p>\n"
    )
    return Reply(status, page.encode(), "text/html; charset=utf-8")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------- routing


@dataclass
class Call:
    """One request as the route handlers see it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    identity: Identity
    params: dict[str, str]


@dataclass(frozen=True)
class _Route:
    template: str
    methods: dict[str, str]  # HTTP method -> FTSService method name
    pattern: re.Pattern[str]


def _route(template: str, **methods: str) -> _Route:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template.rstrip("/") or "/"))
    return _Route(template, methods, re.compile(f"^{regex}/?$" if regex != "/" else "^/$"))


_ADMIN = {m: "_admin_only" for m in ("GET", "POST", "PUT", "DELETE")}

# Order matters where templates overlap: literal segments first, as Werkzeug does.
_ROUTES = [
    _route("/", GET="_root"),
    _route("/whoami", GET="_whoami"),
    _route("/whoami/certificate", GET="_whoami_certificate"),
    _route("/api-docs/schema/submit", GET="_submit_schema"),
    _route("/optimizer", GET="_optimizer"),
    _route("/optimizer/current", GET="_empty_list"),
    _route("/optimizer/evolution", GET="_empty_list"),
    _route("/delegation/{dlg_id}", GET="_delegation_view", DELETE="_delegation_delete"),
    _route("/delegation/{dlg_id}/request", GET="_delegation_request"),
    _route(
        "/delegation/{dlg_id}/credential",
        PUT="_delegation_credential",
        POST="_delegation_credential",
    ),
    _route("/jobs", GET="_list_jobs", POST="_submit", PUT="_submit"),
    _route("/jobs/all", DELETE="_root_only"),
    _route("/jobs/vo/{vo}", DELETE="_root_only"),
    _route("/jobs/{id}", GET="_get_jobs", DELETE="_cancel", POST="_modify"),
    _route("/jobs/{id}/files", GET="_get_files"),
    _route("/jobs/{id}/files/{file_id}/retries", GET="_get_retries"),
    _route("/jobs/{id}/files/{file_ids}", DELETE="_cancel_files"),
    _route("/jobs/{id}/dm", GET="_get_dm"),
    _route("/jobs/{id}/{field}", GET="_get_job_field"),
    _route("/files", GET="_list_files"),
    _route("/archive", GET="_archive_index"),
    _route("/archive/{id}", GET="_get_archived"),
    _route("/archive/{id}/{field}", GET="_get_archived_field"),
    _route("/status/hosts", GET="_status_hosts"),
    _route("/config", **_ADMIN),
    _route("/config/{section}", **_ADMIN),
    _route("/config/{section}/{item}", **_ADMIN),
    _route("/ban/se", **_ADMIN),
    _route("/ban/dn", **_ADMIN),
    _route("/autocomplete/{kind}", GET="_admin_only"),
    _route("/admin/force-start", POST="_admin_only"),
]


def resolve(method: str, path: str) -> tuple[str, str | None, dict[str, str], list[str]]:
    """(template, handler name or None, path params, allowed methods) for a request."""
    allowed: list[str] = []
    template = None
    lookup = "GET" if method == "HEAD" else method
    for route in _ROUTES:
        match = route.pattern.match(path)
        if not match:
            continue
        template = template or route.template
        if lookup in route.methods:
            return route.template, route.methods[lookup], match.groupdict(), []
        allowed.extend(m for m in route.methods if m not in allowed)
    return template or path, None, {}, allowed


def allow_header(methods: list[str]) -> str:
    extra = ["HEAD"] if "GET" in methods else []
    return ", ".join(sorted({*methods, *extra, "OPTIONS"}))
