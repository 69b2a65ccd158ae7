"""Airflow must be able to discover the provider: a bad dict breaks discovery for everyone."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import jsonschema
from packaging.utils import canonicalize_name

from airflow_provider_fts.get_provider_info import get_provider_info


def test_provider_info_matches_the_schema_airflow_validates_it_against():
    import airflow

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())

    jsonschema.validate(get_provider_info(), schema)


def test_connection_form_matches_the_provider_yaml_schema():
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider.yaml.schema.json").read_text())
    connection_schema = schema["properties"]["connection-types"]["items"]

    for connection_type in get_provider_info()["connection-types"]:
        jsonschema.validate(connection_type, connection_schema)


def test_package_name_is_the_installed_distribution_name():
    installed = distribution("airflow-provider-fts").metadata["Name"]

    assert get_provider_info()["package-name"] == canonicalize_name(installed)


def test_every_module_and_class_the_provider_names_imports():
    info = get_provider_info()
    modules = [
        m
        for key in ("operators", "sensors", "hooks", "triggers")
        for e in info[key]
        for m in e["python-modules"]
    ]
    classes = info["extra-links"] + [c["hook-class-name"] for c in info["connection-types"]]

    for module in modules:
        importlib.import_module(module)
    for path in classes:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


def test_airflow_cli_lists_the_provider():
    airflow_cli = Path(sys.executable).with_name("airflow")

    result = subprocess.run(
        [str(airflow_cli), "providers", "list", "--output", "plain"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=True,
    )

    line = next(line for line in result.stdout.splitlines() if "airflow-provider-fts" in line)
    assert "CERN FTS3" in line  # the name the README promises (the listing shows descriptions)


def _fts_form():
    """The FTS connection form as Airflow's API sends it to the UI."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    return next(m for m in HookMetaService.hook_meta_data() if m.connection_type == "fts")


def test_the_pem_fields_are_multiline_inputs():
    # Airflow 3's form renders a string schema with format "multiline" as a textarea.
    fields = _fts_form().extra_fields

    pems = [name for name in fields if name.endswith("_pem")]

    assert pems == ["x509_proxy_pem", "x509_cert_pem", "x509_private_key_pem"]
    assert {fields[name]["schema"]["format"] for name in pems} == {"multiline"}


def test_the_form_has_one_access_token_field():
    form = _fts_form()
    titles = [field["schema"].get("title") for field in form.extra_fields.values()]
    standard = [getattr(form.standard_fields, name) for name in ("login", "password")]

    assert titles.count("Token: static access token") == 1
    assert all(field.hidden for field in standard)


def test_verify_is_optional_and_shows_its_default():
    verify = _fts_form().extra_fields["verify"]

    # The form marks a field required when its type does not allow null.
    assert "null" in verify["schema"]["type"]
    assert verify["value"] is True
    assert "default" in verify["description"].lower()
