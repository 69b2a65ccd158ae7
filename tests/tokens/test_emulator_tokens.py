"""The emulator's token checks (testing/tokens.py) on tokens of the real identity provider."""

from __future__ import annotations

import time

import pytest

from airflow_provider_fts.client.oidc import OIDCSettings, TokenSource, jwt_claims
from airflow_provider_fts.testing.tokens import (
    FAILED_TO_VALIDATE,
    TestIssuer,
    TokenValidator,
    TrustedIssuer,
    anonymous_whoami,
    token_id,
    token_record,
)
from tests.tokens.conftest import FTS_AUDIENCE, IdP

STORAGE = "https://storage.example.org:8443"


@pytest.fixture(scope="module")
def robot_token(idp: IdP) -> str:
    return TokenSource(idp.robot()).token()


@pytest.fixture
def validator(idp: IdP) -> TokenValidator:
    return TokenValidator([TrustedIssuer(idp.issuer)], [FTS_AUDIENCE], verify=idp.ca_file)


def test_a_robot_token_is_the_identity_tokens_md_shows(
    idp: IdP, validator: TokenValidator, robot_token: str
) -> None:
    verdict = validator.check(robot_token)
    assert not verdict.ignored

    whoami = validator.identity(verdict.claims)  # type: ignore[arg-type]

    assert whoami == idp.robot_whoami()


def test_the_jwks_is_fetched_once_and_es256_tokens_validate(
    idp: IdP, validator: TokenValidator, robot_token: str
) -> None:
    es256 = TokenSource(idp.robot("fts-robot-es256")).token()

    for _ in range(20):
        assert not validator.check(robot_token).ignored
    assert not validator.check(es256).ignored
    assert validator.jwks_fetches == 1


def test_a_user_token_takes_its_vo_from_the_wlcg_groups(
    idp: IdP, validator: TokenValidator
) -> None:
    settings = OIDCSettings(
        idp.issuer,
        "fts-user",
        refresh_token=idp.user_refresh_token(),
        scope="fts",
        audience=FTS_AUDIENCE,
        verify=idp.ca_file,
    )
    verdict = validator.check(TokenSource(settings).token())

    whoami = validator.identity(verdict.claims)  # type: ignore[arg-type]
    assert (whoami["user_dn"], whoami["vos"]) == ("test-user", ["dteam"])


def test_the_configured_vo_is_found_only_for_an_issuer_with_a_trailing_slash(
    idp: IdP, robot_token: str
) -> None:
    # As in 3.13.4: the real IdP's issuer has no trailing slash, so its host name is the VO.
    with_vo = TokenValidator(
        [TrustedIssuer(idp.issuer, vo="dteam")], [FTS_AUDIENCE], verify=idp.ca_file
    )
    claims = with_vo.check(robot_token).claims
    assert with_vo.identity(claims)["vos"] == ["localhost"]  # type: ignore[arg-type]

    slash = TestIssuer("https://iam.example.org/", vo="dteam")
    validator = TokenValidator([slash.trusted], [FTS_AUDIENCE])
    claims = validator.check(slash.mint("robot", FTS_AUDIENCE)).claims
    assert validator.identity(claims)["vos"] == ["dteam"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "expired"),
        ("wrong audience", "wrong audience"),
        ("unknown issuer", "unknown issuer"),
        ("bad signature", "bad signature"),
        ("not a JWT", "not a JWT"),
        ("not yet valid", "not yet valid"),
    ],
)
def test_invalid_tokens_are_ignored_not_refused(
    idp: IdP, robot_token: str, case: str, reason: str
) -> None:
    claims = jwt_claims(robot_token)
    assert claims is not None
    clock = {"expired": claims["exp"] + 1, "not yet valid": claims["nbf"] - 5}.get(case)
    audiences = [STORAGE] if case == "wrong audience" else [FTS_AUDIENCE]
    issuers = [TestIssuer().trusted] if case == "unknown issuer" else [TrustedIssuer(idp.issuer)]
    token = robot_token
    if case == "bad signature":
        head, payload, signature = robot_token.split(".")
        token = f"{head}.{payload}.{signature[:-6]}AAAAAA"
    elif case == "not a JWT":
        token = "an-opaque-token"
    validator = TokenValidator(
        issuers, audiences, verify=idp.ca_file, clock=(lambda: clock) if clock else time.time
    )

    verdict = validator.check(token)

    assert verdict.ignored
    assert verdict.reason == reason


def test_per_file_tokens_are_checked_without_their_audience(
    idp: IdP, validator: TokenValidator
) -> None:
    storage = TokenSource(idp.robot(audience=STORAGE, scope="storage.read:/data")).token()
    local = TestIssuer()

    assert validator.check(storage).ignored  # not an FTS audience ...
    assert validator.transfer_token_error(storage) is None  # ... but a valid transfer token
    assert validator.transfer_token_error("opaque") == "Token does not contain an iss claim"
    assert validator.transfer_token_error(local.mint("u", STORAGE)) == FAILED_TO_VALIDATE
    trusting_local = TokenValidator([local.trusted], [FTS_AUDIENCE])
    expired = local.mint("u", STORAGE, lifetime=-10)
    assert trusting_local.transfer_token_error(expired) == FAILED_TO_VALIDATE
    no_scope = local.mint("u", STORAGE, scope=None)
    assert trusting_local.transfer_token_error(no_scope) == "Token does not contain a scope claim"
    no_nbf = local.mint("u", STORAGE, nbf=None)
    assert trusting_local.transfer_token_error(no_nbf) == "Token does not contain a nbf claim"


def test_the_token_record_is_what_fts_stores(idp: IdP, robot_token: str) -> None:
    claims = jwt_claims(robot_token)
    assert claims is not None

    record = token_record(robot_token, claims)

    assert record["token_id"] == token_id(robot_token) == record["token_id"][:16]
    assert record["issuer"] == idp.issuer + "/"
    assert record["refresh_after"] == claims["nbf"] + (claims["exp"] - claims["nbf"]) // 2
    assert (record["scope"], record["audience"]) == ("fts", FTS_AUDIENCE)


def test_the_built_in_issuer_needs_no_identity_provider() -> None:
    issuer = TestIssuer("https://iam.example.org/", vo="dteam")
    validator = TokenValidator([issuer.trusted], [FTS_AUDIENCE])
    token = issuer.mint("alice", FTS_AUDIENCE, scope="fts", **{"wlcg.groups": ["/atlas"]})

    whoami = validator.identity(validator.check(token).claims)  # type: ignore[arg-type]

    assert (whoami["user_dn"], whoami["vos"], whoami["method"]) == ("alice", ["dteam"], "oauth2")
    assert "kid" not in repr(issuer) and token not in repr(issuer)
    assert anonymous_whoami()["method"] == "unauthenticated"
