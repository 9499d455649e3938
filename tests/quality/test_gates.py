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


def test_a_bad_batch_fails_the_incremental_gate_and_skips_the_dbt_model_downstream(home):
    """The real incremental gate and the real dbt assets: a clean run builds the staging view and
    moves the watermark; then a new batch with one negative amount lands, only that batch is
    judged, the gate fails and dbt never runs the view downstream of it."""
    from orchestration.dbt.assets import dbt_key, dbt_models
    from orchestration.dbt.definitions import defs as dbt_defs

    staging = dbt_key("stg_ecommerce__orders")
    gate = build_quality_gate(raw_key("ecommerce_orders"), "raw.ecommerce_orders", incremental=True)
    resources = {"warehouse": WarehouseResource(), "dbt": dbt_defs.resources["dbt"]}

    def run(new_batch: bool):
        @dg.asset(key=raw_key("ecommerce_orders"))
        def orders(warehouse: WarehouseResource):
            if new_batch:
                with warehouse.connect() as con:
                    con.execute(
                        "insert into raw.ecommerce_orders select * replace ('batch-' || order_id as order_id, "
                        "case when order_id = (select min(order_id) from raw.ecommerce_orders) then -1 "
                        "else amount end as amount, now()::timestamp + interval 1 second as _loaded_at) "
                        "from raw.ecommerce_orders order by order_id limit 3"
                    )

        return dg.materialize(
            [orders, dbt_models, gate],
            selection=[raw_key("ecommerce_orders"), staging],
            resources=resources,
            raise_on_error=False,
        )

    def gate_evaluation(result):
        [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == GATE_NAME]
        return evaluation

    clean = run(new_batch=False)
    assert gate_evaluation(clean).passed
    assert staging.to_user_string() in _materialized(clean)

    bad = run(new_batch=True)
    evaluation = gate_evaluation(bad)
    assert not evaluation.passed
    assert evaluation.metadata["rows_validated"].value == 3  # the new batch only
    assert evaluation.metadata["failed"].value == ["expect_column_values_to_be_between(amount): 1 unexpected"]
    assert _materialized(bad) == {"raw/ecommerce_orders"}
    # The failed gate keeps its watermark: the next run judges the batch again.
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    watermark, newest = con.execute(
        "select (select loaded_through from quality.gate_watermarks where suite = 'raw.ecommerce_orders'), "
        "(select max(_loaded_at) from raw.ecommerce_orders)"
    ).fetchone()
    con.close()
    assert watermark < newest


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
