import shutil

import dagster as dg
import duckdb
import pytest

from c360.privacy.scan import scan_file
from cli.evals.quality import quality_scores
from orchestration.ingest.assets import raw_key
from orchestration.quality.checks import GATE_NAME, build_quality_gate, quality_checks
from orchestration.resources import WarehouseResource


@pytest.fixture
def home(loaded_home, tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    shutil.copy(loaded_home / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    return tmp_path


def _graph(plant_bad_rows: bool):
    """raw/ecommerce_orders rewritten (good or bad), its real gate, and one asset downstream."""

    @dg.asset(key=raw_key("ecommerce_orders"))
    def orders(warehouse: WarehouseResource):
        if plant_bad_rows:
            with warehouse.connect() as con:
                con.execute(
                    "update raw.ecommerce_orders set amount = -1 where order_id in "
                    "(select order_id from raw.ecommerce_orders limit 2)"
                )

    @dg.asset(deps=[raw_key("ecommerce_orders")])
    def order_report():
        return 1

    return [orders, order_report, build_quality_gate(raw_key("ecommerce_orders"), "raw.ecommerce_orders")]


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_failing_gate_stops_the_downstream_asset(home):
    result = dg.materialize(
        _graph(plant_bad_rows=True), resources={"warehouse": WarehouseResource()}, raise_on_error=False
    )
    assert _materialized(result) == {"raw/ecommerce_orders"}
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == GATE_NAME and not evaluation.passed
    assert evaluation.metadata["expectations_failed"].value == 1
    assert (home / "reports" / "data_docs").is_dir()
    assert evaluation.metadata["data_docs"].value.startswith(str(home / "reports" / "data_docs"))


def test_passing_gate_lets_the_downstream_asset_run(home):
    result = dg.materialize(_graph(plant_bad_rows=False), resources={"warehouse": WarehouseResource()})
    assert _materialized(result) == {"raw/ecommerce_orders", "order_report"}
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_gates_guard_every_raw_table_and_the_key_marts():
    guarded = {key.asset_key.to_user_string() for check in quality_checks for key in check.check_keys}
    assert {"raw/products", "raw/web_events", "marts/customer_360", "marts/identity_map"} <= guarded
    assert len(guarded) == 11
    assert all(spec.blocking for check in quality_checks for spec in check.check_specs)


def test_quarantine_matches_planted_defects_and_rows_are_conserved(loaded_home):
    con = duckdb.connect(str(loaded_home / "warehouse.duckdb"), read_only=True)
    scores = quality_scores(con, loaded_home / "landing" / "_truth")
    con.close()
    assert scores["mismatches"] == []
    assert (scores["precision"], scores["recall"], scores["rule_agreement"]) == (1.0, 1.0, 1.0)
    assert scores["conserved"] is True


def test_conservation_breaks_when_a_loaded_row_disappears(loaded_home, tmp_path):
    shutil.copy(loaded_home / "warehouse.duckdb", tmp_path / "w.duckdb")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("delete from raw.products where product_id in (select product_id from raw.products limit 1)")
    scores = quality_scores(con, loaded_home / "landing" / "_truth")
    con.close()
    assert scores["conserved"] is False and scores["by_source"]["products"]["conserved"] is False


def test_the_docs_of_a_failed_gate_hold_no_plaintext(home):
    dg.materialize(
        _graph(plant_bad_rows=True), resources={"warehouse": WarehouseResource()}, raise_on_error=False
    )
    docs = home / "reports" / "data_docs"
    assert [f for p in docs.rglob("*") if p.suffix in (".html", ".json") for f in scan_file(p)] == []
