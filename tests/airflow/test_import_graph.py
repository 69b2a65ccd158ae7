"""The Airflow layer is a star around the hook: operator and sensor never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_fts

PACKAGE = Path(airflow_provider_fts.__file__).parent
OPERATOR = "airflow_provider_fts.operators"
SENSOR = "airflow_provider_fts.sensors"


def provider_imports(module: str) -> set[str]:
    """The ``airflow_provider_fts`` modules one module imports, read from its source.

    :param module: a dotted path below ``airflow_provider_fts``, e.g. ``operators.fts``.
    """
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("airflow_provider_fts")}


def test_operator_and_sensor_import_the_hub_and_not_each_other() -> None:
    hub = {
        "airflow_provider_fts.hooks.fts",
        "airflow_provider_fts.links.fts",
        "airflow_provider_fts.verdict",
        "airflow_provider_fts.tasks",  # their shared part: trigger, assets, on_kill
    }
    for module, other in (("operators.fts", SENSOR), ("sensors.fts", OPERATOR)):
        imports = provider_imports(module)

        assert hub <= imports, (module, hub - imports)
        assert not any(name.startswith(other) for name in imports), (module, imports)


def test_trigger_imports_neither_operator_nor_sensor() -> None:
    imports = provider_imports("triggers.fts")

    assert "airflow_provider_fts.hooks.fts" in imports
    assert not any(name.startswith((OPERATOR, SENSOR)) for name in imports), imports


def test_the_client_imports_nothing_outside_the_client() -> None:
    client = f"{PACKAGE.name}.client"
    outside = {
        f"client.{path.stem}": sorted(
            # The package root holds only __version__ (protocol.py's User-Agent reads it).
            name
            for name in provider_imports(f"client.{path.stem}")
            if name != PACKAGE.name and not name.startswith(client)
        )
        for path in (PACKAGE / "client").glob("*.py")
    }

    assert {module: names for module, names in outside.items() if names} == {}


def test_provider_info_is_a_leaf_that_no_module_imports() -> None:
    modules = [
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py")
        if path.stem != "__init__"
    ]
    leaf = f"{PACKAGE.name}.get_provider_info"
    importers = [module for module in modules if leaf in provider_imports(module)]

    assert importers == []
