"""Test helpers: a local FTS3 emulator and a test PKI (no Airflow import)."""
