"""A job store on a clock the tests move by hand, shared by the store and engine tests."""

from __future__ import annotations

import pytest

from airflow_provider_fts.testing.store import JobStore


class Clock:
    """Epoch seconds that only move when a test sets ``now``."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> JobStore:
    return JobStore(clock=clock)
