"""Apache Airflow provider for CERN's FTS3 File Transfer Service."""

from __future__ import annotations

__version__ = "0.1.0"
