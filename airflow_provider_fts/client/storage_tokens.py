"""Per-file storage tokens (WLCG token profile) for the transfers of one submission.

Each transfer gets, for every source URL, a token with scope ``storage.read:<directory>``
and, for every destination URL, one with ``storage.modify:<directory>``, each of audience
the storage endpoint ``https://host[:port]``. A token is shared by every file of one
directory on one endpoint: 10,000 files in 3 source and 3 destination directories cost 6
token requests. Tokens the user gave (``source_tokens``/``destination_tokens``) are kept.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from airflow_provider_fts.client.errors import FTSValidationError
from airflow_provider_fts.client.oidc import OIDCSettings, TokenSource, token_source
from airflow_provider_fts.client.submission import Transfer
from airflow_provider_fts.client.urls import netloc

__all__ = ["StorageTokenMinter", "storage_audience", "storage_scope"]

_READ, _MODIFY = "storage.read", "storage.modify"


def storage_audience(url: str) -> str:
    """The audience of a storage token for ``url``: ``https://host[:port]`` of its endpoint.

    For ``davs``, ``root``, ``s3s`` ... the scheme is dropped and the host and port kept.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        raise FTSValidationError(
            "transfers", f"{url!r} names no storage host.", "Give full storage URLs."
        )
    return f"https://{netloc(parts.hostname, parts.port)}"


def storage_scope(operation: str, url: str) -> str:
    """``<operation>:<directory of the file>``, e.g. ``storage.read:/data/run1``."""
    path = urlsplit(url).path or "/"
    directory = posixpath.dirname(posixpath.normpath("/" + path.lstrip("/")))
    return f"{operation}:{directory}"


class StorageTokenMinter:
    """Mints the storage tokens of a submission from one OIDC client.

    :param settings: the OIDC client (its scope and audience are replaced per token).
    :param extra_scope: scopes added to every storage token, e.g. ``offline_access``.
    :param source_for: how a settings object becomes a token source (the process registry).
    """

    def __init__(
        self,
        settings: OIDCSettings,
        *,
        extra_scope: str = "",
        source_for: Callable[[OIDCSettings], TokenSource] = token_source,
    ) -> None:
        self._settings = settings
        self._extra_scope = " ".join(extra_scope.split())
        self._source_for = source_for

    def token(self, operation: str, url: str) -> str:
        """The token for one operation on one URL (shared by the URL's directory)."""
        scope = storage_scope(operation, url)
        if self._extra_scope:
            scope = f"{scope} {self._extra_scope}"
        settings = dataclasses.replace(self._settings, scope=scope, audience=storage_audience(url))
        return self._source_for(settings).token()

    def with_tokens(self, transfers: Iterable[Transfer]) -> list[Transfer]:
        """``transfers`` with storage tokens added where the user gave none."""
        # Within one submission a directory's token is looked up once, not once per file.
        memo: dict[tuple[str, str], str] = {}
        return [self._with_tokens(transfer, memo) for transfer in transfers]

    def _with_tokens(self, transfer: Transfer, memo: dict[tuple[str, str], str]) -> Transfer:
        if transfer.source_tokens is not None and transfer.destination_tokens is not None:
            return transfer
        return dataclasses.replace(
            transfer,
            source_tokens=self._tokens(_READ, transfer.sources, memo),
            destination_tokens=self._tokens(_MODIFY, transfer.destinations, memo),
        )

    def _tokens(
        self, operation: str, urls: Sequence[str], memo: dict[tuple[str, str], str]
    ) -> tuple[str, ...]:
        tokens = []
        for url in urls:
            # The URL up to its last "/" (no query) names the endpoint and the directory.
            key = (operation, url.partition("?")[0].partition("#")[0].rpartition("/")[0])
            if key not in memo:
                memo[key] = self.token(operation, url)
            tokens.append(memo[key])
        return tuple(tokens)
