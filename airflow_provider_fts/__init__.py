"""Apache Airflow provider for CERN's FTS3 File Transfer Service."""

from __future__ import annotations

from airflow_provider_fts.client.version import __version__

__all__ = ["__version__"]
