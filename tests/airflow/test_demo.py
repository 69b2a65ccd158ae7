"""``make demo`` end to end, as a user runs it: a process of its own, its own Airflow home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def test_demo_copies_the_files_intact_and_leaves_nothing_behind(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["TMPDIR"] = str(tmp_path)

    done = subprocess.run(
        [sys.executable, str(DEMO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 of 3 files copied intact" in done.stdout
    assert "(trigger)" in done.stdout  # the sensor waited in the triggerer
    assert list(tmp_path.iterdir()) == []
