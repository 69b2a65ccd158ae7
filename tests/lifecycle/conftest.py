"""One real Airflow (scheduler, dag-processor, triggerer, API server) against the session's
FTS emulator, which runs in this process so tests can read its job store. The stack starts
once, for the first test of this package, and stops after its last one (so it does not
load the machine while other suites run).

Every test in this directory carries the ``lifecycle`` marker (``pytest -m lifecycle``).
Each process's output is in ``<AIRFLOW_HOME>/<component>.out``; the path is printed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_fts.testing.environment import FTSTestPKI
from airflow_provider_fts.testing.server import FTSEmulator

from .stack import AirflowStack

DAGS = Path(__file__).resolve().parent / "dags"
LIFECYCLE_DAGS = {
    "lc_retry", "lc_fatal", "lc_clear_operator", "lc_clear_sensor", "lc_mark", "lc_mapped",
    "lc_kill", "lc_links", "lc_assets", "lc_asset_consumer", "lc_asset_consumer_of_failed",
    "lc_mark_mapped", "lc_fix", "lc_kill_submitting",
}  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PLUGINS = Path(__file__).resolve().parent / "plugins"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.lifecycle)


@pytest.fixture(scope="package")
def airflow_stack(
    fts_emulator_session: FTSEmulator,
    fts_pki: FTSTestPKI,
    artifacts: Path,
) -> Iterator[AirflowStack]:
    # Kept after the session (pytest's own temp dirs rotate away under parallel runs):
    # the processes' output and task logs are what explains a failed scenario.
    home = artifacts / "airflow-home"
    shutil.rmtree(home, ignore_errors=True)
    connection = fts_emulator_session.connection_json(
        fts_pki.voms_proxy_path, ca_path=fts_pki.ca_dir
    )
    plugins = {"AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS)}  # the "FTS transfers" view
    stack = AirflowStack(home, DAGS, {"AIRFLOW_CONN_FTS_DEFAULT": connection, **plugins})
    print(f"\nlifecycle: Airflow home {home}, API server {stack.base_url}")
    try:
        stack.start()
        stack.wait_dags(LIFECYCLE_DAGS)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def emulator(fts_emulator_session: FTSEmulator) -> FTSEmulator:
    return fts_emulator_session


@pytest.fixture
def storage(fts_storage: dict[str, Path]) -> dict[str, Path]:
    """``davs://site-a.example`` and ``davs://site-b.example`` as local directories."""
    return fts_storage


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Kept after the session, git-ignored: screenshots, Airflow home, process output."""
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()  # only this session's pictures
    return ARTIFACTS
