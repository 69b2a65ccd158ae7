"""A connection with several FTS endpoints: the extras checked before any request, and what
follows each endpoint (monitoring URL, OIDC audience)."""

from __future__ import annotations

import pytest

from airflow_provider_fts.client.connection import FTSConnectionSettings
from airflow_provider_fts.client.errors import FTSValidationError

HOST = "fts1.example.org"
PROXY = {"x509up_file": "/tmp/x509up_u1000"}
OIDC = {
    "oidc_issuer": "https://iam.example.org/",
    "oidc_client_id": "robot",
    "oidc_client_secret": "s",
}


def settings(**extra) -> FTSConnectionSettings:
    return FTSConnectionSettings.from_connection(HOST, None, None, {**PROXY, **extra})


def refusal(**extra) -> FTSValidationError:
    with pytest.raises(FTSValidationError) as raised:
        settings(**extra)
    assert raised.value.fix, "every refusal says how to fix it"
    return raised.value


@pytest.mark.parametrize(
    "value",
    [
        ["fts2.example.org", "https://fts3.example.org:9446"],
        "fts2.example.org, https://fts3.example.org:9446",
    ],
)
def test_failover_endpoints_follow_the_host_in_order(value):
    assert settings(failover_endpoints=value).endpoints == (
        "https://fts1.example.org:8446",
        "https://fts2.example.org:8446",
        "https://fts3.example.org:9446",
    )


def test_a_connection_without_failover_endpoints_has_one():
    assert settings().endpoints == ("https://fts1.example.org:8446",)
    assert settings().endpoint_policy == "failover"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("http://fts2.example.org", "not an https URL"),
        (["fts2.example.org/fts"], "has a path"),
        ("fts2.example.org,fts2.example.org:8446", "twice"),
        ("fts1.example.org", "twice (the host counts"),
        ({"url": "fts2.example.org"}, "not a list of endpoints"),
    ],
)
def test_a_bad_failover_endpoint_is_refused_by_name(value, problem):
    error = refusal(failover_endpoints=value)
    assert error.field == "extra 'failover_endpoints'"
    assert problem in error.problem


def test_an_unknown_policy_is_refused_with_the_choices():
    error = refusal(endpoint_policy="round-robin")
    assert error.field == "extra 'endpoint_policy'"
    assert "failover, random" in str(error.fix)


def test_random_policy_and_the_wait_are_read():
    chosen = settings(endpoint_policy="Random", failover_wait_seconds="90")
    assert (chosen.endpoint_policy, chosen.failover_wait) == ("random", 90.0)


def test_each_endpoint_gets_its_own_monitoring_url():
    second = settings(failover_endpoints="fts2.example.org").for_endpoint(
        "https://fts2.example.org:8446"
    )
    assert second.job_url("j1") == "https://fts2.example.org:8449/fts3/ftsmon/#/job/j1"
    assert second.endpoint == "https://fts2.example.org:8446"


def test_a_monitoring_url_of_the_user_stays_for_every_endpoint():
    chosen = settings(failover_endpoints="fts2.example.org", monitoring_url="https://mon/{job_id}")
    assert chosen.for_endpoint("https://fts2.example.org:8446").job_url("j1") == "https://mon/j1"


def test_an_oidc_token_defaults_to_one_audience_per_server():
    extra = {**OIDC, "failover_endpoints": "fts2.example.org"}
    chosen = FTSConnectionSettings.from_connection(HOST, None, None, extra)
    second = chosen.for_endpoint("https://fts2.example.org:8446")
    assert chosen.credential.oidc.audience == "https://fts1.example.org:8446"
    assert second.credential.oidc.audience == "https://fts2.example.org:8446"
    assert second.poller_key() != chosen.poller_key()


def test_an_oidc_audience_of_the_user_applies_to_every_server():
    extra = {**OIDC, "failover_endpoints": "fts2.example.org", "oidc_audience": "fts"}
    chosen = FTSConnectionSettings.from_connection(HOST, None, None, extra)
    second = chosen.for_endpoint("https://fts2.example.org:8446")
    assert second.credential.oidc.audience == "fts"
