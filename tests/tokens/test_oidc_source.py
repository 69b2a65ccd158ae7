"""The OIDC token source against a real identity provider (panva's oidc-provider)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import requests

from airflow_provider_fts.client.errors import FTSCredentialError
from airflow_provider_fts.client.oidc import (
    OIDCSettings,
    TokenSource,
    is_anonymous_answer,
    jwt_claims,
    token_source,
)
from airflow_provider_fts.client.oidc_wire import parse_token_answer, token_form
from airflow_provider_fts.testing.tokens import TestIssuer
from tests.tokens.conftest import FTS_AUDIENCE, ROBOT_SECRET, SHORT_TTL, IdP


@pytest.fixture
def counted(idp: IdP) -> IdP:
    idp.reset_counts()
    return idp


def test_robot_token_has_the_fts_audience_scope_and_subject(counted: IdP) -> None:
    token = token_source(counted.robot()).token()

    claims = jwt_claims(token)
    assert claims is not None
    assert (claims["sub"], claims["aud"], claims["scope"]) == ("fts-robot", FTS_AUDIENCE, "fts")
    assert claims["iss"] == counted.issuer
    assert counted.token_requests() == 1


def test_one_token_request_per_credential_not_per_call(counted: IdP) -> None:
    tokens = {token_source(counted.robot()).token() for _ in range(200)}
    other_scope = token_source(counted.robot(scope="fts offline_access")).token()

    assert len(tokens) == 1
    assert other_scope not in tokens
    assert counted.token_requests() == 2
    assert counted.get("/test/counts")["discovery"] == 1  # the token endpoint is cached


def test_a_short_token_is_renewed_once_per_half_life_and_never_served_expired(
    counted: IdP,
) -> None:
    source = token_source(counted.robot("fts-robot-short"))
    seen: list[str] = []
    deadline = time.time() + SHORT_TTL + 1
    while time.time() < deadline:
        token = source.token()
        claims = jwt_claims(token)
        assert claims is not None
        assert claims["exp"] - time.time() > SHORT_TTL / 2 - 1  # at least half its life left
        if not seen or seen[-1] != token:
            seen.append(token)
        time.sleep(0.1)

    # ~110 calls over 11 s of 10 s tokens renewed half-way: 3 tokens, 3 requests.
    assert len(seen) == 3
    assert counted.token_requests() == 3


def test_renewal_time_follows_the_margin_for_long_tokens(counted: IdP) -> None:
    now = [time.time()]
    source = TokenSource(counted.robot(), margin=60, clock=lambda: now[0])
    first = source.token()

    now[0] += 300 - 61  # the IdP's tokens live 300 s: still outside the margin
    assert source.token() == first
    now[0] += 2  # inside the margin
    assert source.token() != first
    assert source.fetches == 2


def test_a_wrong_secret_names_the_field_and_never_shows_the_secret(counted: IdP) -> None:
    secret = "wrong-secret-4f1b"
    source = token_source(counted.robot(client_secret=secret))

    with pytest.raises(FTSCredentialError) as caught:
        source.token()

    assert caught.value.field == "oidc_client_secret"
    assert "invalid_client" in str(caught.value)
    assert "Fix:" in str(caught.value)
    for text in (str(caught.value), repr(caught.value), repr(source), repr(source.settings)):
        assert secret not in text
        assert ROBOT_SECRET not in text


def test_a_bad_refresh_token_names_its_field(counted: IdP) -> None:
    refresh = "not-a-refresh-token-9c2e"
    settings = OIDCSettings(
        counted.issuer, "fts-user", refresh_token=refresh, scope="fts", verify=counted.ca_file
    )

    with pytest.raises(FTSCredentialError) as caught:
        token_source(settings).token()

    assert caught.value.field == "oidc_refresh_token"
    assert refresh not in str(caught.value) and refresh not in repr(settings)


def test_the_secret_goes_by_basic_or_by_form_never_both(counted: IdP) -> None:
    basic = counted.robot()
    post = counted.robot("fts-robot-post", client_auth="client_secret_post")
    for settings in (basic, post):
        form, headers = token_form(settings, None)
        assert ("client_secret" in form) != ("Authorization" in headers)
        assert form["resource"] == form["audience"] == FTS_AUDIENCE

    # Both ways work against the real provider; one carrying both would be refused.
    assert jwt_claims(TokenSource(basic).token())["sub"] == "fts-robot"  # type: ignore[index]
    assert jwt_claims(TokenSource(post).token())["sub"] == "fts-robot-post"  # type: ignore[index]
    form, headers = token_form(basic, None)
    form.update(client_id="fts-robot", client_secret=ROBOT_SECRET)
    both = requests.post(
        counted.issuer + "/token", data=form, headers=headers, verify=counted.ca_file, timeout=10
    )
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")


def test_refresh_token_grant_keeps_the_rotated_refresh_token(counted: IdP) -> None:
    settings = OIDCSettings(
        counted.issuer,
        "fts-user",
        refresh_token=counted.user_refresh_token(),
        scope="fts",
        audience=FTS_AUDIENCE,
        verify=counted.ca_file,
    )
    source = token_source(settings)
    tokens = []
    for _ in range(3):
        tokens.append(source.token())
        source.invalidate()  # a spent refresh token would now be refused (and the grant revoked)

    claims = jwt_claims(tokens[-1])
    assert claims is not None
    assert (claims["sub"], claims["aud"], claims["wlcg.groups"]) == (
        "test-user",
        FTS_AUDIENCE,
        ["/dteam"],
    )
    assert len(set(tokens)) == 3


def test_renew_after_an_anonymous_answer_happens_once_for_all_callers(counted: IdP) -> None:
    source = token_source(counted.robot())
    used = source.token()

    renewed = source.renew(used)
    again = source.renew(used)  # a second caller that saw the same ignored token

    assert renewed != used
    assert again == renewed
    assert counted.token_requests() == 2


def test_many_threads_asking_at_once_cause_one_fetch(counted: IdP) -> None:
    source = token_source(counted.robot())
    barrier = threading.Barrier(16)
    tokens: list[str] = []

    def ask() -> None:
        barrier.wait()
        tokens.append(source.token())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(tokens) == 16 and len(set(tokens)) == 1
    assert counted.token_requests() == 1


async def test_async_path_shares_one_fetch_and_never_blocks_the_loop(counted: IdP) -> None:
    source = token_source(counted.robot())
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    tokens = await asyncio.gather(*(source.token_async() for _ in range(10)))
    done.set()
    await ticking

    assert len(set(tokens)) == 1
    assert counted.token_requests() == 1
    assert ticks > 1  # the loop ran other work while the token was fetched
    assert source.token() == tokens[0]  # the sync path sees the same cached token


async def test_async_wrong_secret_raises_the_same_error(counted: IdP) -> None:
    with pytest.raises(FTSCredentialError) as caught:
        await TokenSource(counted.robot(client_secret="nope-1234")).token_async()
    assert caught.value.field == "oidc_client_secret"
    assert "nope-1234" not in str(caught.value)


def test_settings_are_checked_before_any_request() -> None:
    with pytest.raises(FTSCredentialError) as caught:
        OIDCSettings("http://iam.example.org", "c", client_secret="s")
    assert caught.value.field == "oidc_issuer"
    with pytest.raises(FTSCredentialError) as caught:
        OIDCSettings("https://iam.example.org", "c")
    assert caught.value.field == "oidc_client_secret"
    with pytest.raises(FTSCredentialError) as caught:
        OIDCSettings("https://iam.example.org", " ", client_secret="s")
    assert caught.value.field == "oidc_client_id"


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "anonymous"),
    [
        ("POST", "/jobs", 403, {"message": "Not enough permissions"}, True),
        ("GET", "/jobs/abc", 500, {"message": "The server encountered..."}, True),
        ("DELETE", "/jobs/abc", 500, {}, True),
        ("POST", "/jobs/abc,", 500, {}, True),  # a priority change: the same job routes
        ("GET", "/whoami", 200, {"method": "unauthenticated"}, True),
        ("GET", "/whoami", 200, {"method": "oauth2"}, False),
        ("POST", "/jobs", 500, {}, False),
        ("GET", "/jobs/abc", 404, {"message": "No job"}, False),
        ("GET", "/delegation/x/request", 403, {"message": "Certificate required"}, False),
    ],
)
def test_anonymous_answers_are_recognised(
    method: str, path: str, status: int, body: dict, anonymous: bool
) -> None:
    assert is_anonymous_answer(method, path, status, body) is anonymous


class _SlowSession(requests.Session):
    """A real session whose token requests take half a second (a slow identity provider)."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = threading.Event()

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        if method == "POST":
            self.sending.set()
            time.sleep(0.5)
        return super().request(method, url, *args, **kwargs)


async def test_async_callers_wait_for_a_sync_fetch_without_blocking_the_loop(
    counted: IdP,
) -> None:
    session = _SlowSession()
    source = TokenSource(counted.robot(), session=session)
    sync_tokens: list[str] = []
    thread = threading.Thread(target=lambda: sync_tokens.append(source.token()))
    thread.start()
    await asyncio.to_thread(session.sending.wait, 5)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while thread.is_alive():
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(tick())
    async_token = await source.token_async()
    await ticking
    thread.join()

    assert async_token == sync_tokens[0]  # the async caller took the sync fetch's token
    assert counted.token_requests() == 1 and source.fetches == 1
    assert ticks >= 10  # the loop kept running while the sync fetch held the lock


@pytest.mark.parametrize(
    ("expires_in", "jwt_lifetime", "lifetime"),
    [(3600, 600, 600), (600, 3600, 600), (None, 900, 900), (1200, None, 1200)],
)
def test_expiry_is_the_earlier_of_expires_in_and_the_jwt_exp(
    expires_in: int | None, jwt_lifetime: int | None, lifetime: int
) -> None:
    settings = OIDCSettings("https://iam.example.org", "c", client_secret="s")
    token = "opaque-token"
    if jwt_lifetime is not None:
        token = TestIssuer().mint("robot", FTS_AUDIENCE, lifetime=jwt_lifetime)
    started = time.time()
    body = {"access_token": token, "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in

    answer = parse_token_answer(settings, 200, json.dumps(body).encode(), started, margin=60)

    assert answer.token.expires_at == pytest.approx(started + lifetime, abs=1)
    assert answer.token.renew_at == pytest.approx(started + lifetime - 60, abs=1)
    assert token not in repr(answer)
