"""The code's layers, read from its imports: core (c360/, expectations/) below ml/, below
orchestration/, below the consumers (cli/, app/); each imports only what lies below it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What each layer's modules must not import (a package, or a module of the standard library or a
# third party that has no business there).
FORBIDDEN = {
    "c360": {"orchestration", "ml", "cli", "app", "click", "dagster", "mlflow", "sklearn"},
    "expectations": {"orchestration", "ml", "cli", "app", "dagster"},
    "ml": {"orchestration", "cli", "app", "dagster", "duckdb", "sqlite3", "click"},
    "orchestration": {"cli", "app", "click"},
}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_layer_imports_only_the_layers_below_it(package):
    offences = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & FORBIDDEN[package])
        for path in _modules(package)
    }
    assert {path: names for path, names in offences.items() if names} == {}


def test_the_rule_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import os\nfrom orchestration.definitions import defs\n\ndef f():\n    import duckdb\n"
    )
    assert _imported_roots(module) == {"os", "orchestration", "duckdb"}
