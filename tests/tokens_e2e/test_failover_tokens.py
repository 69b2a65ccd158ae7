"""One OIDC client, several FTS servers: each server gets a token of its own audience.

The second emulator trusts the same IdP and authorises only its own ``https://host:port``
as audience, so it accepts the token only if the client asked the IdP for that audience.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_fts.client import endpoints
from airflow_provider_fts.hooks.fts import FTSHook
from airflow_provider_fts.testing.environment import FTSTestPKI
from airflow_provider_fts.testing.server import FTSEmulator
from tests.tokens.conftest import IdP
from tests.tokens_e2e.conftest import token_server


@pytest.fixture
def second_server(
    idp: IdP, fts_pki: FTSTestPKI, fts_storage: dict[str, Path]
) -> Iterator[FTSEmulator]:
    with token_server(idp, fts_pki, fts_storage) as emulator:
        yield emulator


def test_the_failover_server_gets_a_token_of_its_own_audience(
    oidc_connection, token_emulator: FTSEmulator, second_server: FTSEmulator
):
    endpoints.SHARED_HEALTH.clear()
    endpoints.SHARED_LOCATIONS.clear()
    oidc_connection(failover_endpoints=[second_server.url])
    hook = FTSHook()
    before = token_emulator.store.job_count()

    token_emulator.go_down()
    try:
        job_id = hook.submit_job([("mock://src.example/t?size=1", "mock://dst.example/t")])
    finally:
        token_emulator.come_back()

    assert (token_emulator.store.job_count() - before, second_server.store.job_count()) == (0, 1)
    assert hook.endpoint_of(job_id) == second_server.url
    assert hook.endpoints.client(second_server.url).whoami()["method"] == "oauth2"
    assert hook.whoami()["method"] == "oauth2"  # the first server, its own audience
