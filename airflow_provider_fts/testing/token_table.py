"""The server's ``t_token`` table and the token rules of a job submission (FTS 3.13.4).

A token submission (``method`` oauth2) needs a bearer token with every claim FTS stores.
Without per-file tokens that bearer token becomes every file's source and destination
token; with ``source_tokens``/``destination_tokens`` each listed token is checked offline
(signature and times, not the audience) and stored instead. Each distinct token is one
row, written once, and the files start in ``TOKEN_PREP`` until the daemon's token exchange
(the :class:`~.engine.Engine`) releases them. An X.509 submission may carry the same lists:
its files get the token ids, but no row is written and they start as usual.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_fts.client.oidc_wire import jwt_claims
from airflow_provider_fts.client.states import FileState
from airflow_provider_fts.testing.identity import Identity
from airflow_provider_fts.testing.records import HTTPError
from airflow_provider_fts.testing.tokens import missing_claim_message, token_id, token_record

if TYPE_CHECKING:
    from airflow_provider_fts.testing.tokens import TokenValidator

__all__ = ["BOTH_REQUIRED", "TokenTable", "hold_for_token_exchange"]

BOTH_REQUIRED = "Both source_tokens and destination_tokens are required if one of them is present."

#: A token for each source and each destination of one file entry (None: no token).
FileTokens = tuple[list[str | None], list[str | None]]


class TokenTable:
    """The stored tokens, and the checks a submission's tokens go through.

    :param validator: the server's token checks (None: ``OAuth2 = False``).
    """

    def __init__(self, validator: TokenValidator | None = None) -> None:
        self.validator = validator
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def check_bearer(self, identity: Identity) -> None:
        """A token caller's token must carry what FTS stores (``iss``, ``nbf``, ``exp``...)."""
        if identity.method == "oauth2":
            message = missing_claim_message(identity.claims or {})
            if message is not None:
                raise HTTPError(400, message)

    def file_tokens(self, file_dict: Mapping[str, Any], identity: Identity) -> FileTokens:
        """The tokens of one file entry, aligned with its ``sources`` and ``destinations``."""
        sources, destinations = file_dict["sources"], file_dict["destinations"]
        source_tokens = file_dict.get("source_tokens")
        destination_tokens = file_dict.get("destination_tokens")
        if source_tokens is None and destination_tokens is None:
            bearer = identity.token if identity.method == "oauth2" else None
            return [bearer] * len(sources), [bearer] * len(destinations)
        if source_tokens is None or destination_tokens is None:
            raise HTTPError(400, BOTH_REQUIRED)
        _check_list(source_tokens, sources, "source")
        _check_list(destination_tokens, destinations, "destination")
        if identity.method == "oauth2":
            for token in (*source_tokens, *destination_tokens):
                self._check_transfer_token(token)
        return list(source_tokens), list(destination_tokens)

    def _check_transfer_token(self, token: str) -> None:
        if self.validator is None:  # unreachable: no token caller without OAuth2
            raise HTTPError(400, "Unsupported authentication method: method=OAuth2")
        message = self.validator.transfer_token_error(token)
        if message is not None:
            raise HTTPError(400, message)

    def label(
        self, rows: Sequence[dict[str, Any]], tokens: FileTokens, identity: Identity
    ) -> dict[str, dict[str, Any]]:
        """Put the token ids on one entry's rows; the ``t_token`` rows a token job writes.

        :param rows: the entry's rows, one per (source, destination) pair in that order.
        :param tokens: :meth:`file_tokens` of the entry.
        :param identity: the submitter (only token submitters write rows).
        """
        source_tokens, destination_tokens = tokens
        records: dict[str, dict[str, Any]] = {}
        for index, row in enumerate(rows):
            pair = divmod(index, len(destination_tokens))
            source, destination = source_tokens[pair[0]], destination_tokens[pair[1]]
            row["src_token_id"] = token_id(source) if source else None
            row["dst_token_id"] = token_id(destination) if destination else None
            if identity.method != "oauth2":
                continue
            for token in (source, destination):
                if token:
                    claims = identity.claims if token == identity.token else jwt_claims(token)
                    records[token_id(token)] = token_record(token, claims or {})
        return records

    def save(self, records: Mapping[str, Mapping[str, Any]]) -> None:
        """Write the rows of a submitted job; a token already stored stays as it is."""
        with self._lock:
            for key, record in records.items():
                self._rows.setdefault(key, dict(record))

    def rows(self) -> list[dict[str, Any]]:
        """Copies of every ``t_token`` row, in the order they were written."""
        with self._lock:
            return copy.deepcopy(list(self._rows.values()))


def hold_for_token_exchange(files: Sequence[dict[str, Any]]) -> None:
    """Files with a stored token wait in ``TOKEN_PREP``; their own state is kept aside."""
    for row in files:
        if row["src_token_id"] or row["dst_token_id"]:
            row["file_state_initial"] = row["file_state"]
            row["file_state"] = FileState.TOKEN_PREP.value


def _check_list(tokens: Any, urls: Sequence[str], kind: str) -> None:
    if len(tokens) != len(urls):
        raise HTTPError(400, f"Length of {kind}_tokens should be equal to the length of {kind}s.")
    for url, token in zip(urls, tokens, strict=True):
        if not token:
            raise HTTPError(400, f"Token for {kind} '{url}' is missing.")
