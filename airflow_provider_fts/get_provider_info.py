"""Provider metadata read by Airflow's provider discovery (entry point ``apache_airflow_provider``).

Airflow validates this dict against its provider-info schema and requires ``package-name``
to equal the installed distribution name; an error here breaks discovery for every
provider, so a test checks both.
"""

from __future__ import annotations

from typing import Any

# Airflow masks an extra by its NAME (any name holding "proxy", "token", "private_key",
# "passphrase", ...), so no path field's name holds one and every secret's name does.
_PATH = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}
# A textarea keeps a pasted PEM's line breaks (Airflow 3's form renders "multiline" so).
_PEM = {"type": ["string", "null"], "format": "multiline"}
_HOURS = {"type": ["number", "null"], "minimum": 1}

#: ``[fts] resume_guard_seconds``: how long after a deferral a trigger holds back an event
#: (Airflow 3.3 may misread a task resumed within seconds: apache/airflow#72716).
RESUME_GUARD_SECONDS = 10.0

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
    "storage_tokens": {
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
    "monitoring_url": {
        "label": "Monitoring URL template",
        "description": "Job page in FTS web monitoring; {job_id} is replaced. "
        "Default https://<host>:8449/fts3/ftsmon/#/job/{job_id}.",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
}


def get_provider_info() -> dict[str, Any]:
    """The provider's description, hooks, connection form and links, for Airflow."""
    integration = "CERN FTS3"
    return {
        "package-name": "airflow-provider-fts",
        "name": "CERN FTS3",
        # `airflow providers list` shows the description, not the name: it starts with it.
        "description": "`CERN FTS3 <https://fts.web.cern.ch/>`__: submit, wait for and "
        "report file transfers through CERN's File Transfer Service.",
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://fts3-docs.web.cern.ch/fts3-docs/",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": integration,
                "python-modules": ["airflow_provider_fts.operators.fts"],
            }
        ],
        "sensors": [
            {
                "integration-name": integration,
                "python-modules": ["airflow_provider_fts.sensors.fts"],
            }
        ],
        "hooks": [
            {"integration-name": integration, "python-modules": ["airflow_provider_fts.hooks.fts"]}
        ],
        "triggers": [
            {
                "integration-name": integration,
                "python-modules": ["airflow_provider_fts.triggers.fts"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "fts",
                "hook-class-name": "airflow_provider_fts.hooks.fts.FTSHook",
                "hook-name": "CERN FTS3",
                "ui-field-behaviour": {
                    # The token has one field, "access_token"; a token in the password
                    # (e.g. from a connection URI) is still read.
                    "hidden-fields": ["schema", "login", "password"],
                    "relabeling": {"host": "FTS REST endpoint"},
                    "placeholders": {"host": "fts3-pilot.cern.ch", "port": "8446"},
                },
                "conn-fields": CONNECTION_FIELDS,
            }
        ],
        "extra-links": ["airflow_provider_fts.links.fts.FTSJobLink"],
        "asset-uris": [_asset_uris()],
        "config": _config(),
    }


def _asset_uris() -> dict[str, Any]:
    """Grid storage URLs as asset URIs (rules in :mod:`airflow_provider_fts.assets`): only
    the grid's own schemes, as a normaliser changes every asset of its scheme."""
    from airflow_provider_fts.assets import GRID_SCHEMES

    return {
        "schemes": list(GRID_SCHEMES),
        "handler": "airflow_provider_fts.assets.normalize_uri",
        "to_openlineage_converter": "airflow_provider_fts.assets.convert_asset_to_openlineage",
    }


def _config() -> dict[str, Any]:
    """The provider's settings in ``airflow.cfg`` (section ``[fts]``)."""
    return {
        "fts": {
            "description": "Settings of the CERN FTS3 provider.",
            "options": {
                "resume_guard_seconds": {
                    "description": "Seconds after a task defers during which its "
                    "FTSJobTrigger holds back an event for jobs that ended sooner, so "
                    "Airflow does not misread a task resumed within seconds of its "
                    "deferral (apache/airflow#72716). 0 turns the guard off.",
                    "version_added": "0.1.0",
                    "type": "float",
                    "example": "0",
                    "default": str(RESUME_GUARD_SECONDS),
                }
            },
        }
    }
