"""Per-file storage tokens minted from the real identity provider."""

from __future__ import annotations

import pytest

from airflow_provider_fts.client.oidc import jwt_claims, token_source
from airflow_provider_fts.client.storage_tokens import (
    StorageTokenMinter,
    storage_audience,
    storage_scope,
)
from airflow_provider_fts.client.submission import Transfer
from airflow_provider_fts.testing.tokens import TokenValidator, TrustedIssuer
from tests.tokens.conftest import FTS_AUDIENCE, IdP

SOURCE = "davs://site-a.example:2880"
DESTINATION = "root://site-b.example:1094"


def _transfers(files: int, directories: int) -> list[Transfer]:
    return [
        Transfer(
            sources=(f"{SOURCE}/data/run{i % directories}/file{i}",),
            destinations=(f"{DESTINATION}//store/run{i % directories}/file{i}",),
        )
        for i in range(files)
    ]


def test_each_directory_on_each_endpoint_costs_one_token_request(idp: IdP) -> None:
    idp.reset_counts()
    minter = StorageTokenMinter(idp.robot(scope=None, audience=None))

    transfers = minter.with_tokens(_transfers(3000, 3))

    assert idp.token_requests() == 6  # 3 read tokens + 3 modify tokens, not 6,000
    first = transfers[0]
    read, modify = jwt_claims(first.source_tokens[0]), jwt_claims(first.destination_tokens[0])  # type: ignore[index]
    assert read is not None and modify is not None
    assert (read["aud"], read["scope"]) == (
        "https://site-a.example:2880",
        "storage.read:/data/run0",
    )
    assert (modify["aud"], modify["scope"]) == (
        "https://site-b.example:1094",
        "storage.modify:/store/run0",
    )
    assert transfers[3].source_tokens == first.source_tokens  # same directory, same token
    assert transfers[1].source_tokens != first.source_tokens


def test_storage_tokens_are_valid_transfer_tokens_for_the_emulator(idp: IdP) -> None:
    validator = TokenValidator([TrustedIssuer(idp.issuer)], verify=idp.ca_file)
    minter = StorageTokenMinter(idp.robot(scope=None, audience=None), extra_scope="offline_access")

    (transfer,) = minter.with_tokens(_transfers(1, 1))

    for token in (*transfer.source_tokens, *transfer.destination_tokens):  # type: ignore[misc]
        assert validator.transfer_token_error(token) is None
        assert "offline_access" in jwt_claims(token)["scope"]  # type: ignore[index]


def test_a_users_refresh_token_serves_the_fts_token_and_storage_tokens(idp: IdP) -> None:
    # The provider rotates the refresh token on each use and revokes the grant when a spent
    # one comes back: every source of one refresh token must use the newest one, in turn.
    audiences = [FTS_AUDIENCE, "https://site-a.example:2880", "https://site-b.example:1094"]
    scope = "fts storage.read:/data/run0 storage.modify:/store/run0"
    settings = idp.user(idp.user_refresh_token(audiences, scope))

    fts_token = token_source(settings).token()
    (transfer,) = StorageTokenMinter(settings).with_tokens(_transfers(1, 1))

    subjects = {
        jwt_claims(token)["sub"]  # type: ignore[index]
        for token in (fts_token, *transfer.source_tokens, *transfer.destination_tokens)  # type: ignore[misc]
    }
    assert subjects == {"test-user"}
    read = jwt_claims(transfer.source_tokens[0])  # type: ignore[index]
    assert (read["aud"], read["scope"]) == (audiences[1], "storage.read:/data/run0")  # type: ignore[index]


def test_tokens_the_user_gave_are_kept(idp: IdP) -> None:
    idp.reset_counts()
    given = Transfer(
        sources=(f"{SOURCE}/data/a",),
        destinations=(f"{DESTINATION}//store/a",),
        source_tokens=("user-source-token",),
        destination_tokens=("user-destination-token",),
    )

    (kept,) = StorageTokenMinter(idp.robot(scope=None, audience=None)).with_tokens([given])

    assert kept is given
    assert idp.token_requests() == 0
    assert "user-source-token" not in repr(kept)


@pytest.mark.parametrize(
    ("url", "audience", "scope"),
    [
        ("davs://eos.example.org:443/eos/a/b.root", "https://eos.example.org:443", "/eos/a"),
        ("root://xrd.example.org//store/x", "https://xrd.example.org", "/store"),
        ("https://dcache.example.org/pnfs/f", "https://dcache.example.org", "/pnfs"),
        ("davs://[2001:db8::1]:8443/top", "https://[2001:db8::1]:8443", "/"),
    ],
)
def test_audience_is_the_endpoint_and_scope_the_directory(
    url: str, audience: str, scope: str
) -> None:
    assert storage_audience(url) == audience
    assert storage_scope("storage.read", url) == f"storage.read:{scope}"
