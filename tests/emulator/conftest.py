"""Shared by the store, builder and engine tests.

A job store on a clock the tests move by hand, the callers it sees, small submission
helpers and the recorded exchanges to compare with.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_fts.testing.identity import Identity
from airflow_provider_fts.testing.store import JobStore
from tests.recorded import RECORDED

DN = "/DC=org/DC=example/O=FTS Test/CN=Test User"
SRC = "mock://src.example.org/p"
DST = "mock://dst.example.org/p"


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


@pytest.fixture
def user() -> Identity:
    return Identity(DN, [DN, DN + "/CN=1"], ["/dteam/Role=NULL"], ["dteam"], "bcdfd509cdf58d9e",
                    "certificate")  # fmt: skip


@pytest.fixture
def stranger() -> Identity:
    dn = "/DC=org/CN=Someone Else"
    return Identity(dn, [dn], ["/atlas/Role=NULL"], ["atlas"], "0123456789abcdef", "certificate")


@pytest.fixture
def anonymous() -> Identity:
    return Identity("anon", [], [], [], None, "unauthenticated")


def transfer(name: str = "f", **extra: object) -> dict:
    return {"sources": [f"{SRC}/{name}"], "destinations": [f"{DST}/{name}"], **extra}


def submit(store: JobStore, user: Identity, *files: dict, **params: object) -> str:
    return store.submit({"files": list(files) or [transfer()], "params": params}, user)


def job(store: JobStore, user: Identity, job_id: str, files: list[str] | None = None) -> dict:
    status, body = store.get_jobs([job_id], user, files, multi=False)
    assert status == 200
    return body


def recorded(number: str) -> dict:
    """The recorded exchange number ``number`` (``"023"``)."""
    return json.loads(next(RECORDED.glob(f"{number}-*.json")).read_text())
