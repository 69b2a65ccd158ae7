"""The client and the emulator stand on their own: neither imports Airflow."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK_AIRFLOW = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoAirflow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "airflow" or name.startswith("airflow."):
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, NoAirflow())
    import pkgutil, airflow_provider_fts.client as client, airflow_provider_fts.testing as testing
    for package in (client, testing):
        for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            __import__(module.name)
    assert not any(m == "airflow" or m.startswith("airflow.") for m in sys.modules)
    print("ok")
    """
)


def test_client_and_emulator_import_with_airflow_blocked() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_AIRFLOW], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
