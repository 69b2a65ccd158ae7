"""A framework-free FTS3 REST client (no Airflow import anywhere in it)."""
