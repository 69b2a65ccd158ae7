"""Airflow plugins of the provider (the "FTS transfers" view of the API server)."""
