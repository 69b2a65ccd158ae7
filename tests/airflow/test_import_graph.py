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
