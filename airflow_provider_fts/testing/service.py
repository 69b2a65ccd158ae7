"""The emulator's REST application: one handler per route of a real FTS 3.13 server.

Handlers check what the server checks (certificate, delegation id, body) in the server's
order, then call the :class:`~.store.JobStore` or the :class:`~.delegations.DelegationStore`.
A refusal is an :class:`~.records.HTTPError`, answered with the server's JSON error body.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping

from airflow_provider_fts.testing.delegations import DelegationStore
from airflow_provider_fts.testing.identity import Identity, authenticate
from airflow_provider_fts.testing.records import INTERNAL_ERROR, HTTPError
from airflow_provider_fts.testing.routes import JSON, Call, Reply, error_reply, json_reply
from airflow_provider_fts.testing.store import JobStore
from airflow_provider_fts.testing.submit_schema import SUBMIT_SCHEMA

__all__ = ["FTSService"]

_FTS_CLIENT_UA = re.compile(r"fts-.+/(\d+)\.(\d+)")
_SUBMIT_HOST = "localhost"

_ROOT_DOC = {
    "delegation": {"major": 1, "minor": 0, "patch": 0},
    "api": {"major": 3, "minor": 13, "patch": 4},
    "core": None,
    "schema": {"major": 9, "minor": 1, "patch": 0},
    "_links": {
        "curies": [{"name": "fts", "href": "https://gitlab.cern.ch/fts/fts3"}],
        "fts:whoami": {"href": "/whoami", "title": "Check user certificate"},
        "fts:joblist": {
            "href": "/jobs{?vo_name,user_dn,dlg_id,state_in}",
            "title": "List of active jobs",
            "templated": True,
        },
        "fts:job": {
            "href": "/jobs/{id}",
            "title": "Job information",
            "templated": True,
            "hints": {"allow": ["GET", "DELETE"]},
        },
        "fts:configaudit": {"href": "/config/audit", "title": "Configuration"},
        "fts:submitschema": {
            "href": "/api-docs/schema/submit",
            "title": "JSON schema of messages",
        },
        "fts:apidocs": {"href": "/api-docs/", "title": "API Documentation"},
        "fts:jobsubmit": {
            "href": "/jobs",
            "hints": {"allow": ["POST"], "representations": ["fts:submitschema"]},
        },
        "fts:optimizer": {"href": "/optimizer/", "title": "Optimizer"},
        "fts:archive": {"href": "/archive/", "title": "Archive"},
    },
}
_ARCHIVE_DOC = {
    "_links": {
        "curies": [{"name": "fts", "href": "https://gitlab.cern.ch/fts/fts3"}],
        "fts:archivedJob": {
            "href": "/archive/{id}",
            "title": "Archived job information",
            "templated": True,
        },
    }
}


class FTSService:
    """The route handlers over one job store and one delegation store.

    :param store: the jobs.
    :param delegations: the delegated credentials.
    """

    def __init__(self, store: JobStore, delegations: DelegationStore) -> None:
        self.store = store
        self.delegations = delegations

    def authenticate(self, headers: Mapping[str, str], cert_identity: Identity) -> Identity:
        """The caller of one request (raises the middleware's :class:`HTTPError`).

        Bearer tokens are checked by the job store's token table: one validator per server.
        """
        return authenticate(headers, cert_identity, self.store.tokens.validator)

    def dispatch(self, handler_name: str, call: Call) -> Reply:
        try:
            return getattr(self, handler_name)(call)
        except HTTPError as error:
            return error_reply(error.status, error.message)

    # ---- service

    def _root(self, call: Call) -> Reply:
        return json_reply(_ROOT_DOC)

    def _whoami(self, call: Call) -> Reply:
        return json_reply(call.identity.whoami())

    def _whoami_certificate(self, call: Call) -> Reply:
        _require_certificate(call.identity)
        return Reply(200, call.identity.chain_pem, "application/x-pem-file")

    def _submit_schema(self, call: Call) -> Reply:
        return json_reply(SUBMIT_SCHEMA)

    def _optimizer(self, call: Call) -> Reply:
        return json_reply(True)

    def _empty_list(self, call: Call) -> Reply:
        return json_reply([])

    def _admin_only(self, call: Call) -> Reply:
        raise HTTPError(403, "Not enough permissions")

    def _root_only(self, call: Call) -> Reply:
        raise HTTPError(403, "User does not have root privileges")

    def _status_hosts(self, call: Call) -> Reply:
        if not call.identity.is_root:
            raise HTTPError(403, "Not enough permissions")
        return json_reply(self._host_status())

    def _host_status(self) -> dict[str, dict[str, int]]:
        """Per host: files ACTIVE on it (transfer_host) and STARTED there (staging_host)."""
        counts: dict[str, Counter[str]] = {}
        with self.store.lock:
            for job in self.store.stored_jobs():
                for row in job.files:
                    if row["file_state"] == "ACTIVE" and row.get("transfer_host"):
                        counts.setdefault(row["transfer_host"], Counter())["active"] += 1
                    if row["file_state"] == "STARTED" and row.get("staging_host"):
                        counts.setdefault(row["staging_host"], Counter())["staging"] += 1
        return {host: dict(counter) for host, counter in counts.items()}

    # ---- delegation

    def _delegation_view(self, call: Call) -> Reply:
        self._check_delegation_id(call)
        delegation = self.delegations.get(call.params["dlg_id"])
        if delegation is None or delegation.user_dn != call.identity.user_dn:
            return json_reply(None if _wants_null(call.headers) else [])
        return json_reply(
            {
                "termination_time": delegation.termination_time,
                "voms_attrs": delegation.voms_attrs.split("\n"),
            }
        )

    def _delegation_delete(self, call: Call) -> Reply:
        _require_certificate(call.identity)
        self._check_delegation_id(call)
        if not self.delegations.delete(call.params["dlg_id"]):
            raise HTTPError(404, "Delegated credentials not found")
        return Reply(204, b"", None)

    def _delegation_request(self, call: Call) -> Reply:
        _require_certificate(call.identity)
        self._check_delegation_id(call)
        identity = call.identity
        csr = self.delegations.request(
            identity.delegation_id, identity.user_dn, list(identity.voms_cred), identity.key_bits
        )
        return Reply(
            200,
            csr.encode(),
            "text/plain; charset=utf-8",
            {"X-Delegation-ID": identity.delegation_id},
        )

    def _delegation_credential(self, call: Call) -> Reply:
        _require_certificate(call.identity)
        self._check_delegation_id(call)
        self.delegations.put_credential(
            call.identity.delegation_id, call.identity.user_dn, call.body
        )
        return Reply(201, b"", "text/html; charset=utf-8")

    def _check_delegation_id(self, call: Call) -> None:
        if call.params["dlg_id"] != call.identity.delegation_id:
            raise HTTPError(403, "The requested ID and the credentials ID do not match")

    # ---- jobs

    def _submit(self, call: Call) -> Reply:
        # Permission, then body, then delegation, then content: the server's order.
        if call.identity.is_anonymous:
            raise HTTPError(403, "Not enough permissions")
        document = _request_document(call)
        if call.identity.has_certificate:
            self.delegations.check_for_submit(call.identity.delegation_id, call.identity.user_dn)
        job_id = self.store.submit(document, call.identity, _SUBMIT_HOST)
        return json_reply({"job_id": job_id})

    def _list_jobs(self, call: Call) -> Reply:
        return json_reply(self.store.list_jobs(call.query, call.identity))

    def _list_files(self, call: Call) -> Reply:
        return json_reply(self.store.list_files(call.query, call.identity))

    def _get_jobs(self, call: Call) -> Reply:
        ids, multi = _job_ids(call.params["id"])
        fields = call.query.get("files")
        file_fields = [f for f in fields.split(",") if f] if fields is not None else None
        status, body = self.store.get_jobs(ids, call.identity, file_fields, multi)
        return json_reply(body, status)

    def _cancel(self, call: Call) -> Reply:
        ids, multi = _job_ids(call.params["id"])
        status, body = self.store.cancel(ids, call.identity, multi)
        return json_reply(body, status)

    def _modify(self, call: Call) -> Reply:
        ids, multi = _job_ids(call.params["id"])
        identity = call.identity
        status, body = self.store.modify(ids, _request_document(call), identity, multi)
        return json_reply(body, status)

    def _get_files(self, call: Call) -> Reply:
        return json_reply(self.store.get_files(call.params["id"], call.identity))

    def _get_retries(self, call: Call) -> Reply:
        identity = call.identity
        return json_reply(
            self.store.get_retries(call.params["id"], call.params["file_id"], identity)
        )

    def _cancel_files(self, call: Call) -> Reply:
        file_ids = [f for f in call.params["file_ids"].split(",") if f]
        identity = call.identity
        return json_reply(self.store.cancel_files(call.params["id"], file_ids, identity))

    def _get_dm(self, call: Call) -> Reply:
        return json_reply(self.store.get_dm(call.params["id"], call.identity))

    def _get_job_field(self, call: Call) -> Reply:
        identity = call.identity
        return json_reply(
            self.store.get_job_field(call.params["id"], call.params["field"], identity)
        )

    # ---- archive

    def _archive_index(self, call: Call) -> Reply:
        return json_reply(_ARCHIVE_DOC)

    def _get_archived(self, call: Call) -> Reply:
        return json_reply(self.store.get_archived(call.params["id"], call.identity))

    def _get_archived_field(self, call: Call) -> Reply:
        identity = call.identity
        return json_reply(
            self.store.get_archived(call.params["id"], identity, field=call.params["field"])
        )


def _wants_null(headers: Mapping[str, str]) -> bool:
    """Old clients get ``null`` for "no delegation"; fts-* clients >= 3.12 get ``[]``."""
    match = _FTS_CLIENT_UA.search(headers.get("User-Agent", ""))
    if not match:
        return True
    return (int(match.group(1)), int(match.group(2))) < (3, 12)


def _require_certificate(identity: Identity) -> None:
    if not identity.has_certificate:
        raise HTTPError(403, "Certificate required")


def _job_ids(raw: str) -> tuple[list[str], bool]:
    return [i for i in raw.split(",") if i], "," in raw


def _request_document(call: Call) -> dict:
    """The JSON body as the server's ``get_input_as_dict`` reads it."""
    content_type = call.headers.get("Content-Type", "")
    if call.method == "POST" and not content_type.startswith(JSON):
        if content_type.startswith("application/x-www-form-urlencoded"):
            # Accepted by the parser, but nested documents never survive a form (case 076).
            raise HTTPError(500, INTERNAL_ERROR)
        raise HTTPError(400, "Expecting application/json or application/x-www-form-urlencoded")
    try:
        document = json.loads(call.body.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError):
        raise HTTPError(400, "Badly formatted JSON request") from None
    if not isinstance(document, dict):
        raise HTTPError(400, "Expecting a dictionary")
    return document
