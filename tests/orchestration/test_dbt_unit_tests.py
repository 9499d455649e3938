"""The dbt unit tests (fixture rows in, expected rows out) run here, in `make test`: production
runs skip them (orchestration/dbt/assets.py::BUILD_ARGS)."""

import json

from orchestration.dbt.assets import BUILD_ARGS


def test_production_builds_skip_unit_tests_and_keep_data_tests():
    assert BUILD_ARGS[0] == "build"
    assert BUILD_ARGS[BUILD_ARGS.index("--exclude-resource-type") + 1] == "unit_test"
    assert "test" not in BUILD_ARGS and "--exclude" not in BUILD_ARGS


def test_every_dbt_unit_test_passes(demo_copy, monkeypatch, tmp_path, dbt_invoke):
    # Unit tests read their inputs' column types from the warehouse and write fixture tables:
    # a private copy of the built demo warehouse.
    home = demo_copy("warehouse.duckdb")
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    target = tmp_path / "target"
    result = dbt_invoke("test", target, "--select", "test_type:unit")
    assert result.success, result.exception
    units = [r for r in result.result.results if r.node.unique_id.startswith("unit_test.")]
    declared = json.loads((target / "manifest.json").read_text())["unit_tests"]
    assert units and sorted(r.node.unique_id for r in units) == sorted(declared)
    assert all(str(r.status) == "pass" for r in units)
