"""ml/clv_model (with its champion gate), ml/clv and ml/demand_forecast materialized on a tiny
synthetic warehouse: synthetic purchase tables, the dbt feature views the assets read over them."""

import json

import dagster as dg
import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from orchestration.clv.assets import clv_model, clv_scores
from orchestration.clv.checks import clv_champion_gate, clv_scores_valid
from orchestration.clv.definitions import defs as clv_defs
from orchestration.forecast.assets import demand_forecast
from orchestration.forecast.definitions import defs as forecast_defs
from orchestration.resources import WarehouseResource

CUSTOMERS = 300
START = pd.Timestamp("2022-01-03")
DAYS = 2 * 365 + 200
CATEGORIES = ["books", "electronics", "home"]


def synthetic_purchases(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """BG/NBD-like buyers over ~2.5 years (some buy twice on one day), with order lines."""
    rng = np.random.default_rng(seed)
    purchases = []
    for c in range(CUSTOMERS):
        day = rng.uniform(0, DAYS * 0.8)
        rate, drop, spend = rng.gamma(2.0, 1 / 80), rng.beta(1.0, 4.0), rng.lognormal(3.5, 0.4)
        while day < DAYS:
            at = START + pd.Timedelta(days=int(day), hours=int(rng.integers(8, 22)))
            for _ in range(1 + int(rng.random() < 0.05)):
                purchases.append((f"order:{len(purchases)}", f"c{c:04d}", at, spend * rng.lognormal(0, 0.3)))
            if rng.random() < drop:
                break
            day += rng.exponential(1 / rate)
    orders = pd.DataFrame(purchases, columns=["purchase_id", "customer_id", "purchased_at", "amount"])
    orders["channel"] = np.where(rng.random(len(orders)) < 0.7, "web", "store")
    orders["payment_method"] = "card"
    orders["used_promo"] = False
    lines = orders.loc[orders.index.repeat(rng.integers(1, 4, len(orders)))].reset_index(drop=True)
    month = lines["purchased_at"].dt.month.to_numpy()
    lines["category"] = np.where(month >= 11, "electronics", rng.choice(CATEGORIES, len(lines)))
    lines["product_id"] = lines["category"] + "-" + rng.integers(1, 20, len(lines)).astype(str)
    lines["quantity"] = rng.integers(1, 4, len(lines))
    lines["line_amount"] = lines["amount"] / 2
    return orders, lines


@pytest.fixture(scope="module")
def materialized(tmp_path_factory, dbt_build_in_subprocess):
    home = tmp_path_factory.mktemp("clv_home")
    warehouse = home / "warehouse.duckdb"
    orders, lines = synthetic_purchases()
    con = duckdb.connect(str(warehouse))
    con.register("orders", orders)
    con.register("lines", lines)
    con.execute("create schema intermediate")
    con.execute(
        "create table intermediate.int_purchases_unioned as select purchase_id, customer_id, channel, "
        "purchased_at, amount, payment_method, used_promo from orders"
    )
    con.execute(
        "create table intermediate.int_purchase_lines_unioned as select customer_id, purchase_id, "
        "purchased_at, channel, product_id, category, quantity::integer as quantity, line_amount from lines"
    )
    con.close()
    dbt_build_in_subprocess(warehouse, "clv_customer_summary clv_holdout_summary category_weekly_units", home)

    previous_uri = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("C360_HOME", str(home))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
        env.setenv("C360_MLFLOW_ARTIFACTS", str(home / "mlflow" / "artifacts"))
        env.setenv("C360_GIT_SHA", "0" * 40)
        env.delenv("C360_WAREHOUSE", raising=False)
        result = dg.materialize(
            [clv_model, clv_champion_gate, clv_scores, demand_forecast, clv_scores_valid],
            resources={"warehouse": WarehouseResource(path=str(warehouse))},
            raise_on_error=False,
        )
        client = MlflowClient()
        champion = client.get_model_version_by_alias("clv", "champion")
        run = client.get_run(champion.run_id)
    mlflow.set_tracking_uri(previous_uri)
    con = duckdb.connect(str(warehouse), read_only=True)
    yield {"result": result, "con": con, "home": home, "champion": champion, "run": run, "orders": orders}
    con.close()


def test_module_exposes_definitions_with_both_assets_and_the_blocking_check():
    merged = dg.Definitions.merge(
        clv_defs, forecast_defs, dg.Definitions(resources={"warehouse": WarehouseResource()})
    )
    keys = {k.to_user_string() for k in merged.resolve_asset_graph().get_all_asset_keys()}
    assert {"ml/clv_model", "ml/clv", "ml/demand_forecast"} <= keys
    for check in (clv_champion_gate, clv_scores_valid):
        assert check.check_specs and all(spec.blocking for spec in check.check_specs)


def test_assets_materialize_and_the_check_passes(materialized):
    result = materialized["result"]
    assert result.success
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "ml/clv_model",
        "ml/clv",
        "ml/demand_forecast",
    }
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {"clv_champion_gate", "clv_scores_valid"}
    assert all(e.passed for e in evaluations), [e.metadata for e in evaluations]


def test_clv_has_one_valid_row_per_purchasing_customer(materialized):
    con = materialized["con"]
    rows, customers, p_min, p_max, clv_min, nulls = con.execute(
        "select count(*), count(distinct customer_id), min(p_alive), max(p_alive), min(clv), "
        "count(*) filter (where clv_tier is null or expected_days_to_next_purchase is null) from ml.clv"
    ).fetchone()
    assert rows == customers == materialized["orders"]["customer_id"].nunique()
    assert 0 <= p_min <= p_max <= 1
    assert clv_min >= 0 and nulls == 0
    tiers = dict(con.execute("select clv_tier, count(*) from ml.clv group by 1").fetchall())
    assert tiers == {"platinum": 15, "gold": 45, "silver": 90, "bronze": 150}


def test_clv_summary_counts_purchase_days_and_measures_T_to_the_day_after_the_last_purchase(materialized):
    con = materialized["con"]
    orders = materialized["orders"]
    days = orders.assign(day=orders["purchased_at"].dt.normalize()).groupby("customer_id")["day"]
    expected = pd.DataFrame(
        {
            "frequency": days.nunique() - 1,
            "t_days": (orders["purchased_at"].max().normalize() + pd.Timedelta(days=1) - days.min()).dt.days,
        }
    )
    actual = con.execute("select customer_id, frequency, t_days from ml.clv").df().set_index("customer_id")
    pd.testing.assert_frame_equal(
        actual.sort_index(), expected.sort_index().rename_axis("customer_id"), check_dtype=False
    )


def test_first_clv_version_is_champion_with_lineage_and_no_customer_ids_in_mlflow(materialized):
    champion, run = materialized["champion"], materialized["run"]
    assert int(champion.version) == 1
    assert run.data.tags["c360.source_table"] == "intermediate.int_purchases_unioned"
    assert run.data.tags["dagster.run_id"] == materialized["result"].run_id
    assert run.data.tags["dagster.asset_key"] == "ml/clv_model"
    assert {"r", "alpha", "a", "b", "p", "q", "v"} <= set(run.data.params)
    assert "holdout_mae_repeat_purchases" in run.data.metrics
    schema = json.loads(run.inputs.dataset_inputs[0].dataset.schema)
    assert "customer_id" not in json.dumps(schema)
    version = materialized["con"].execute("select distinct model_version from ml.clv").fetchall()
    assert version == [(1,)]


def test_demand_forecast_has_eight_weeks_per_category_after_the_history(materialized):
    con = materialized["con"]
    per_category = con.execute(
        "select category, count(distinct week_start), min(week_start), "
        "bool_and(lower <= units_forecast and units_forecast <= upper) from ml.demand_forecast group by 1"
    ).fetchall()
    assert {row[0] for row in per_category} == set(CATEGORIES)
    last_purchase = materialized["orders"]["purchased_at"].max()
    for category, weeks, first_week, ordered in per_category:
        assert weeks == 8 and ordered, category
        assert pd.Timestamp(first_week) <= last_purchase + pd.Timedelta(days=7)
    assert (materialized["home"] / "reports" / "demand_forecast.png").exists()
    assert (materialized["home"] / "reports" / "clv_by_tier.png").exists()
