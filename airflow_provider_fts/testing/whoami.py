"""The ``GET /whoami`` document, built in one place for every kind of caller (certificate,
token, anonymous), in the shape FTS 3.13.4 answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_fts.client.submission import BASE_ID, vo_id

__all__ = ["whoami_document"]


def whoami_document(
    *,
    user_dn: str,
    dn: Sequence[str],
    voms_cred: Sequence[str],
    vos: Sequence[str],
    roles: Sequence[str],
    level: Mapping[str, str] | list,
    delegation_id: str | None,
    method: str,
    is_root: bool = False,
    oauth2_scope: str = "",
    wlcg_profile: bool = False,
) -> dict[str, Any]:
    """The document; a token caller's (``method="oauth2"``) has the OAuth2 fields too.

    :param user_dn: the caller's DN (a token's subject).
    :param dn: every DN of the chain presented (the subject alone for a token).
    :param voms_cred: the VOMS FQANs (a token's scopes).
    :param vos: the VOs (their ids derived from :data:`BASE_ID`).
    :param roles: the roles read from the FQANs.
    :param level: the granted levels (``[]`` for anonymous).
    :param delegation_id: the id of the caller's delegated credential.
    :param method: ``"certificate"``, ``"oauth2"`` or ``"unauthenticated"``.
    :param is_root: the caller presented the host certificate.
    :param oauth2_scope: a token's scopes, space-separated.
    :param wlcg_profile: the token carries a ``wlcg.ver`` claim.
    """
    body: dict[str, Any] = {
        "user_dn": user_dn,
        "dn": list(dn),
        "base_id": BASE_ID,
        "voms_cred": list(voms_cred),
        "vos": list(vos),
        "vos_id": [str(vo_id(vo)) for vo in vos],
        "roles": list(roles),
        "level": level,
        "delegation_id": delegation_id,
        "method": method,
        "is_root": is_root,
    }
    if method == "oauth2":
        body["oauth2_scope"] = oauth2_scope
        body["wlcg_profile"] = wlcg_profile
        # Two bound methods of the server's credentials object, serialised as {}.
        body["get_granted_level_for_overriden"] = {}
        body["get_granted_level_for"] = {}
    return body
