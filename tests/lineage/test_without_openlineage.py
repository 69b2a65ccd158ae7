"""Without OpenLineage a transfer task still records its asset events, and nothing of
OpenLineage is imported: the run happens in a process where it cannot be."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from tests.lineage.conftest import asset_events

REPO = Path(__file__).resolve().parents[2]

RUN_WITHOUT_OPENLINEAGE = textwrap.dedent(
    """
    import importlib.abc, sys

    # Provider discovery may still read the installed provider's metadata dict; the
    # OpenLineage library, the provider's code and our facets module cannot load.
    DISCOVERY = {"airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info"}

    OURS = ("airflow.providers.openlineage", "airflow_provider_fts.openlineage")

    def blocked(name):
        if name in DISCOVERY:
            return False
        return name.split(".")[0] == "openlineage" or name.startswith(OURS)

    class NoOpenLineage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, NoOpenLineage())
    from datetime import datetime
    from airflow.sdk import DAG, AssetAlias
    from airflow_provider_fts.operators.fts import FTSSubmitOperator
    from tests.lineage.conftest import register

    prefix = sys.argv[1]
    with DAG(dag_id=f"no_ol_{prefix}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        FTSSubmitOperator(
            task_id="copy",
            transfers=[(f"mock://src.example/{prefix}/f", f"mock://dst.example/{prefix}/f")],
            wait_for_completion=True,
            poll_interval=0.2,
            outlets=[AssetAlias("fts-no-openlineage")],
        )
    register(dag)
    run = dag.test()
    loaded = [m for m in sys.modules if blocked(m)]
    print("RESULT", run.state, run.run_id, loaded)
    """
)


def test_a_transfer_task_works_and_imports_nothing_of_openlineage(airflow_db, fts_connection):
    prefix = f"p{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_OPENLINEAGE, prefix],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    _, state, run_id, loaded = line.split(" ", 3)
    assert (state, loaded) == ("success", "[]")
    destination = f"mock://dst.example/{prefix}/f"
    assert list(asset_events(f"no_ol_{prefix}", run_id)) == [(destination, destination)]
