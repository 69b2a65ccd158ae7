"""Provider metadata read by Airflow's provider discovery (entry point ``apache_airflow_provider``).

Airflow validates this dict against its provider-info schema and requires ``package-name``
to equal the installed distribution name; an error here breaks discovery for every
provider, so a test checks both.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_fts.client.connection_fields import CONNECTION_FIELDS
from airflow_provider_fts.config import provider_config
from airflow_provider_fts.lineage import GRID_SCHEMES


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
        "config": provider_config(),
    }


def _asset_uris() -> dict[str, Any]:
    """Grid storage URLs as asset URIs (rules in :mod:`airflow_provider_fts.lineage`): only
    the grid's own schemes, as a normaliser changes every asset of its scheme."""
    return {
        "schemes": list(GRID_SCHEMES),
        "handler": "airflow_provider_fts.lineage.normalize_uri",
        "to_openlineage_converter": "airflow_provider_fts.assets.convert_asset_to_openlineage",
    }
