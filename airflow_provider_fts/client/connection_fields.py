"""The connection's fields as Airflow's form shows them: names, labels, descriptions, schemas.

The client owns them: :mod:`.connection` accepts exactly these extras, and the provider
metadata (``get_provider_info``) hands them to Airflow's connection form unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONNECTION_FIELDS"]

# Airflow masks an extra by its NAME (any name holding "proxy", "token", "private_key",
# "passphrase", ...), so no path field's name holds one and every secret's name does.
_PATH = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}
# A textarea keeps a pasted PEM's line breaks (Airflow 3's form renders "multiline" so).
_PEM = {"type": ["string", "null"], "format": "multiline"}
_HOURS = {"type": ["number", "null"], "minimum": 1}

#: The connection's extra fields (stored in ``Connection.extra``); the hook accepts exactly these.
CONNECTION_FIELDS: dict[str, dict[str, Any]] = {
    "x509up_file": {
        "label": "X.509 proxy file",
        "description": "Path of an RFC 3820 proxy (certificate, key and chain in one PEM), "
        "e.g. /tmp/x509up_u1000. Use this or certificate + key.",
        "schema": _PATH,
    },
    "x509_cert": {
        "label": "X.509 certificate file",
        "description": "Path of a user or robot certificate (PEM).",
        "schema": _PATH,
    },
    "x509_key": {
        "label": "X.509 key file",
        "description": "Path of the private key (PEM), if not in the certificate file.",
        "schema": _PATH,
    },
    "x509_proxy_pem": {
        "label": "X.509 proxy (PEM text)",
        "description": "The proxy itself, pasted, instead of a path. Stored masked.",
        "schema": _PEM,
    },
    "x509_cert_pem": {
        "label": "X.509 certificate (PEM text)",
        "description": "The certificate chain, pasted, instead of a path (no key here).",
        "schema": _PEM,
    },
    "x509_private_key_pem": {
        "label": "X.509 private key (PEM text)",
        "description": "The certificate's private key, pasted, instead of a path. Stored masked.",
        "schema": _PEM,
    },
    "x509_key_passphrase": {
        "label": "X.509 key passphrase",
        "description": "Passphrase of an encrypted private key.",
        "schema": _SECRET,
    },
    # The "Token" group: Airflow 3.3's form has no field groups (a conn-field is only a
    # label, a description and a schema), so the group is a common label prefix and the
    # fields' order. "oidc_client_secret" and "oidc_refresh_token" hold sensitive words
    # ("secret", "token"), so Airflow masks them; the paths and ids hold none.
    "access_token": {
        "label": "Token: static access token",
        "description": "An OIDC bearer token used as is (it is not renewed), instead of an "
        "X.509 credential or the oidc_* fields.",
        "schema": _SECRET,
    },
    "oidc_issuer": {
        "label": "Token: OIDC issuer",
        "description": "Issuer URL of the identity provider, e.g. https://fts-iam.example.org/; "
        "tokens are then fetched and renewed by the provider.",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "oidc_client_id": {
        "label": "Token: OIDC client id",
        "description": "The OAuth2 client registered at the issuer.",
        "schema": _PATH,
    },
    "oidc_client_secret": {
        "label": "Token: OIDC client secret",
        "description": "The client's secret: the client-credentials grant (a robot account). "
        "Stored masked.",
        "schema": _SECRET,
    },
    "oidc_refresh_token": {
        "label": "Token: OIDC refresh token",
        "description": "A user's refresh token (e.g. from oidc-agent): the refresh-token grant. "
        "Stored masked.",
        "schema": _SECRET,
    },
    "oidc_scope": {
        "label": "Token: OIDC scope",
        "description": "Space-separated scopes of the FTS token, e.g. 'fts'.",
        "schema": _PATH,
    },
    "oidc_audience": {
        "label": "Token: OIDC audience",
        "description": "Audience of the FTS token (default: the endpoint, https://host:port).",
        "schema": _PATH,
    },
    "oidc_ca_file": {
        "label": "Token: identity provider CA file",
        "description": "PEM bundle of CAs to verify the issuer (default: the system CAs).",
        "schema": _PATH,
    },
    "oidc_client_auth": {
        "label": "Token: OIDC client authentication",
        "description": "client_secret_basic (HTTP Basic, the default) or client_secret_post "
        "(in the form body), as the client is registered at the issuer.",
        "schema": _PATH,
    },
    "oidc_storage_access": {
        "label": "Token: mint storage tokens",
        "description": "Also fetch per-file tokens for the storage endpoints (WLCG "
        "storage.read/storage.modify scopes, one per directory and endpoint).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "ca_path": {
        "label": "CA directory",
        "description": "Hashed CA directory to verify the server, "
        "e.g. /etc/grid-security/certificates.",
        "schema": _PATH,
    },
    "ca_file": {
        "label": "CA bundle file",
        "description": "PEM bundle of CAs to verify the server.",
        "schema": _PATH,
    },
    "verify": {
        "label": "Verify the server certificate",
        "description": "On by default; turn off only for a test server.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "delegation_lifetime_hours": {
        "label": "Delegation lifetime (hours)",
        "description": "Lifetime requested for the proxy delegated to FTS (default 12; "
        "longer than the renewal threshold).",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 1},
    },
    "delegation_renew_hours": {
        "label": "Renew delegation below (hours)",
        "description": "Delegate again when the delegated proxy has less left "
        "(default 6; at least 1: FTS refuses submissions under an hour).",
        "schema": _HOURS,
    },
    "timeout_seconds": {
        "label": "Request timeout (seconds)",
        "description": "Longest wait for one FTS answer (default 60; connecting: at most 10).",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "failover_endpoints": {
        "label": "Failover endpoints",
        "description": "Other FTS REST endpoints, in order of preference after the host: a "
        "list or comma-separated, e.g. https://fts2.example.org:8446. A job goes to another "
        "server only when the one tried surely does not hold it.",
        "schema": {"type": ["string", "array", "null"], "items": {"type": "string"}},
    },
    "endpoint_policy": {
        "label": "Endpoint policy",
        "description": "failover (the default: the host first, then the others in order) or "
        "random (submissions spread over the servers not cooling down after a failure).",
        "schema": _PATH,
    },
    "failover_wait_seconds": {
        "label": "Failover wait (seconds)",
        "description": "After a submission's answer was lost, how long to keep asking that "
        "server whether it holds the job before giving up (default 600); no other server is "
        "tried meanwhile.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "monitoring_url": {
        "label": "Monitoring URL template",
        "description": "Job page in FTS web monitoring; {job_id} is replaced. "
        "Default https://<host>:8449/fts3/ftsmon/#/job/{job_id}.",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
}
