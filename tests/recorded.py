"""The request/response pairs recorded from a real FTS REST server (3.13.4).

They live in ``tests/data/recorded``; ``INDEX.md`` there describes every case.
"""

from __future__ import annotations

import json
from pathlib import Path

RECORDED = Path(__file__).resolve().parent / "data" / "recorded"


def recorded_cases() -> list[Path]:
    return sorted(RECORDED.glob("[0-9]*.json"))


def load_case(name: str) -> dict:
    """One case by file name, e.g. ``load_case("045-submit-deterministic.json")``."""
    return json.loads((RECORDED / name).read_text())
