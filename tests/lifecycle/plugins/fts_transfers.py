"""The provider's "FTS transfers" plugin for the suite's Airflow (its plugins folder).

Where the installed provider already declares the plugin (entry point ``airflow.plugins``),
Airflow loads it from there and this module adds nothing (a second copy would be refused).
"""

from importlib.metadata import entry_points

if not any(e.name == "fts_transfers" for e in entry_points(group="airflow.plugins")):
    from airflow_provider_fts.plugins.transfers import FTSTransfersPlugin  # noqa: F401
