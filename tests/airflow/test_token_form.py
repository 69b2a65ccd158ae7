"""The connection form's token fields: their group, order and which ones Airflow masks."""

from __future__ import annotations

from airflow_provider_fts.client.connection_fields import CONNECTION_FIELDS

TOKEN_FIELDS = [
    "access_token",
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_refresh_token",
    "oidc_scope",
    "oidc_audience",
    "oidc_ca_file",
    "oidc_client_auth",
    "oidc_storage_access",
]


def test_the_token_fields_form_one_labelled_group_in_order():
    # Airflow 3.3's conn-fields have no group key: the group is a label prefix and order.
    names = list(CONNECTION_FIELDS)
    start = names.index("access_token")

    assert names[start : start + len(TOKEN_FIELDS)] == TOKEN_FIELDS
    assert all(CONNECTION_FIELDS[n]["label"].startswith("Token: ") for n in TOKEN_FIELDS)
    others = [n for n in names if n not in TOKEN_FIELDS]
    assert not [n for n in others if CONNECTION_FIELDS[n]["label"].startswith("Token")]


def test_airflow_masks_the_client_secret_and_the_refresh_token_not_the_ids():
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

    masked = {"oidc_client_secret", "oidc_refresh_token", "access_token"}
    shown = {"oidc_issuer", "oidc_client_id", "oidc_scope", "oidc_audience", "oidc_ca_file"}

    assert [n for n in sorted(masked) if not should_hide_value_for_key(n)] == []
    assert [n for n in sorted(shown) if should_hide_value_for_key(n)] == []
    assert {CONNECTION_FIELDS[n]["schema"].get("format") for n in masked} == {"password"}


def test_no_field_holding_a_boolean_a_number_or_a_path_bears_a_word_airflow_masks():
    # Airflow masks by name: the form would show such a field's value as "***" and save that.
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

    def plain(spec: dict) -> bool:
        return spec["schema"].get("format") not in ("password", "multiline")

    masked = [
        n for n, spec in CONNECTION_FIELDS.items() if plain(spec) and should_hide_value_for_key(n)
    ]

    assert masked == []


def test_the_add_connection_form_gets_the_booleans_defaults_not_the_placeholder():
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    form = next(m for m in HookMetaService.hook_meta_data() if m.connection_type == "fts")
    booleans = {
        name: field["value"]
        for name, field in form.extra_fields.items()
        if "boolean" in field["schema"]["type"]
    }

    assert booleans == {"oidc_storage_access": False, "verify": True}
