"""The customer marts: dbt marts read from the shared demo platform (read-only), and the
customer domain's Python assets materialized on a copy of its warehouse."""

import shutil

import dagster as dg
import duckdb
import mlflow
import pytest
from mlflow import MlflowClient

from ml import segments
from orchestration.customer.assets import (
    customer_segment_model,
    customer_segments,
    mart_pictures,
    text_sentiment,
)
from orchestration.customer.definitions import defs as customer_defs
from orchestration.resources import WarehouseResource

BEHAVIOUR_COLUMNS = {
    "top_category",
    "top_categories",
    "share_web",
    "share_app",
    "share_store",
    "preferred_time_of_day",
    "preferred_payment_method",
    "promotion_sensitivity",
    "browse_to_buy_ratio",
    "last_seen_at",
    "tickets",
    "open_complaints",
    "last_contact_at",
    "reviews",
    "avg_review_score",
    "avg_sentiment",
    "segment_name",
}


def test_customer_definitions_are_part_of_the_platform():
    from orchestration.definitions import defs as platform_defs

    graph = platform_defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {key for a in customer_defs.assets for key in a.keys} <= set(graph.get_all_asset_keys())
    assert {"ml/text_sentiment", "marts/customer_segments", "reports/mart_pictures"} <= keys
    # The segments are built from the intermediate model, not from customer_360 (which reads them).
    upstream = {
        k.to_user_string() for k in graph.get(dg.AssetKey(["marts", "customer_segments"])).parent_keys
    }
    assert "marts/customer_360" not in upstream
    assert "intermediate/int_customer_behaviour_summarised" in upstream


@pytest.fixture(scope="module")
def demo_warehouse(demo_home):
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_customer_360_keeps_one_row_per_customer_with_behaviour_columns(demo_warehouse):
    columns = {r[0] for r in demo_warehouse.execute("describe marts.customer_360").fetchall()}
    assert BEHAVIOUR_COLUMNS <= columns
    # Risk comes from the churn model's scores (empty until it has run).
    assert {"churn_probability", "churn_risk_band"} <= columns
    rows, customers, shares_off = demo_warehouse.execute(
        "select count(*), count(distinct customer_id), "
        "count(*) filter (where abs(share_web + share_app + share_store - 1) > 1e-9) from marts.customer_360"
    ).fetchone()
    assert rows == customers > 0
    assert shares_off == 0


def test_previous_purchase_is_the_second_latest_of_each_customers_purchases(demo_warehouse):
    """previous_purchase_at (the won-back tag reads it): the time of the customer's second
    purchase by recency, two at the same time counted as two; null with fewer than two."""
    checked, wrong, with_previous = demo_warehouse.execute(
        """
        with ranked as (
            select customer_id, purchased_at,
                row_number() over (partition by customer_id order by purchased_at desc, purchase_id desc) as recency
            from intermediate.int_purchases_unioned
        )
        select count(*),
            count(*) filter (where c.previous_purchase_at is distinct from r.purchased_at),
            count(c.previous_purchase_at)
        from marts.customer_360 c
        left join ranked r on r.customer_id = c.customer_id and r.recency = 2
        """
    ).fetchone()
    assert checked > 0 and with_previous > 0
    assert wrong == 0


def test_funnel_counts_every_session_once_and_never_grows_down_the_funnel(demo_warehouse):
    sessions, funnel_sessions, anonymous, growing = demo_warehouse.execute(
        """
        select (select count(*) from intermediate.int_web_sessions_sessionised),
               sum(sessions),
               sum(sessions) filter (where rfm_segment = 'anonymous'),
               count(*) filter (where cart_sessions > product_view_sessions or product_view_sessions > sessions)
        from marts.funnel_daily
        """
    ).fetchone()
    assert sessions == funnel_sessions > 0
    assert anonymous > 0
    assert growing == 0


def test_tags_cover_the_groups_and_belong_to_known_customers(demo_warehouse):
    groups = {
        r[0] for r in demo_warehouse.execute("select distinct tag_group from marts.customer_tags").fetchall()
    }
    assert groups <= {"basic", "behaviour", "interest", "value", "risk"}
    assert {"basic", "behaviour", "interest", "value"} <= groups
    orphans = demo_warehouse.execute(
        "select count(*) from marts.customer_tags where customer_id not in (select customer_id from marts.customer_360)"
    ).fetchone()[0]
    assert orphans == 0


def test_churn_risk_tags_follow_the_champions_bands(demo_warehouse):
    # High and medium bands in customer_360 become risk tags; low risk is not a tag.
    expected = set(
        demo_warehouse.execute(
            "select customer_id, churn_risk_band || ' churn risk' from marts.customer_360"
            " where churn_risk_band in ('high', 'medium')"
        ).fetchall()
    )
    tagged = set(
        demo_warehouse.execute(
            "select customer_id, value from marts.customer_tags where tag_group = 'risk' and tag = 'churn_risk'"
        ).fetchall()
    )
    assert expected, "the demo's churn model scored no one high or medium"
    assert tagged == expected


@pytest.fixture(scope="module")
def materialized(demo_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("customer_home")
    warehouse = home / "warehouse.duckdb"
    shutil.copy(demo_home / "warehouse.duckdb", warehouse)
    previous_uri = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("C360_HOME", str(home))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        env.setenv("C360_MLFLOW_ARTIFACTS", str(home / "artifacts"))
        env.delenv("C360_WAREHOUSE", raising=False)
        result = dg.materialize(
            [
                text_sentiment,
                customer_segment_model,
                customer_segments,
                mart_pictures,
                *customer_defs.asset_checks,
            ],
            resources={"warehouse": WarehouseResource(path=str(warehouse))},
            run_config={"ops": {"ml__text_sentiment": {"config": {"evaluate_olist": False}}}},
            raise_on_error=False,
        )
        runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("sentiment").experiment_id])
    mlflow.set_tracking_uri(previous_uri)
    con = duckdb.connect(str(warehouse), read_only=True)
    yield result, con, home, runs
    con.close()


def _metadata(result, key: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return event.materialization.metadata


def test_sentiment_scores_every_text_and_reports_held_out_accuracy(materialized):
    result, con, _, runs = materialized
    assert result.success
    texts, scored, out_of_range, bad_labels = con.execute(
        """
        select (select count(*) from intermediate.int_customer_texts_unioned), count(*),
               count(*) filter (where sentiment < -1 or sentiment > 1),
               count(*) filter (where label not in ('negative', 'neutral', 'positive'))
        from ml.text_sentiment
        """
    ).fetchone()
    assert texts == scored > 0
    assert out_of_range == bad_labels == 0
    metadata = _metadata(result, "ml/text_sentiment")
    assert 0 <= metadata["generated_accuracy"].value <= 1
    [run] = runs
    assert "generated_accuracy" in run.data.metrics
    assert not any("text" in str(v) and len(str(v)) > 40 for v in run.data.params.values())


def test_every_buyer_gets_one_named_segment(materialized):
    result, con, _, _ = materialized
    buyers, segmented, unnamed = con.execute(
        """
        select (select count(*) from intermediate.int_customer_behaviour_summarised where purchases > 0),
               count(distinct customer_id), count(*) filter (where segment_name is null)
        from marts.customer_segments
        """
    ).fetchone()
    assert buyers == segmented > 0
    assert unnamed == 0
    metadata = _metadata(result, "marts/customer_segments")
    assert metadata["k"].value == len(metadata["segment_names"].value)
    assert all(check.passed for check in result.get_asset_check_evaluations())


def test_the_daily_segments_assign_buyers_to_the_stored_segmentation(materialized, tmp_path):
    """The daily run (marts/customer_segments alone) places every buyer, a new one too, by the
    centroids the last fit stored, without fitting again: the segmentation and every unchanged
    buyer's segment stay as they were."""
    _, con, home, _ = materialized
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(home / "warehouse.duckdb", warehouse)
    before = dict(con.execute("select customer_id, segment_id from marts.customer_segments").fetchall())
    stored = con.execute("select fitted_at, model from ml.customer_segment_model").fetchall()
    assert len(stored) == 1 and stored[0][1] is not None
    copy = duckdb.connect(str(warehouse))
    # A new buyer: an existing buyer's behaviour and categories under a new id.
    [existing] = copy.execute(
        "select customer_id from intermediate.int_customer_behaviour_summarised where purchases > 0 "
        "order by customer_id limit 1"
    ).fetchone()
    for table in ("int_customer_behaviour_summarised", "int_customer_categories_ranked"):
        copy.execute(
            f"insert into intermediate.{table} select * replace ('new-buyer' as customer_id) "
            f"from intermediate.{table} where customer_id = ?",
            [existing],
        )
    copy.close()
    result = dg.materialize(
        [customer_segments], resources={"warehouse": WarehouseResource(path=str(warehouse))}
    )
    after_con = duckdb.connect(str(warehouse), read_only=True)
    try:
        after = dict(
            after_con.execute("select customer_id, segment_id from marts.customer_segments").fetchall()
        )
        assert (
            after_con.execute("select fitted_at, model from ml.customer_segment_model").fetchall() == stored
        )
    finally:
        after_con.close()
    assert after.pop("new-buyer") == before[existing]
    assert after == before
    assert _metadata(result, "marts/customer_segments")["fitted_here"].value is False


def test_a_refit_keeps_the_stored_segmentations_k(materialized, tmp_path, monkeypatch):
    """The weekly refit (ml/customer_segment_model) reads the k of the segmentation in use and
    keeps it unless another k is clearly better: here any margin keeps it."""
    result, _, home, _ = materialized
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(home / "warehouse.duckdb", warehouse)
    by_k = {
        int(k): v for k, v in _metadata(result, "ml/customer_segment_model")["silhouette_by_k"].value.items()
    }
    in_use = min(by_k, key=by_k.get)  # the worst k, never the one a fresh fit picks
    monkeypatch.setenv("C360_HOME", str(tmp_path))  # the refit draws its picture there
    resources = {"warehouse": WarehouseResource(path=str(warehouse))}
    op = "ml__customer_segment_model"
    dg.materialize(
        [customer_segment_model],
        resources=resources,
        run_config={"ops": {op: {"config": {"k_min": in_use, "k_max": in_use}}}},
    )
    refit = dg.materialize(
        [customer_segment_model],
        resources=resources,
        run_config={"ops": {op: {"config": {"k_change_margin": 1.0}}}},
    )
    metadata = _metadata(refit, "ml/customer_segment_model")
    assert metadata["previous_k"].value == metadata["k"].value == in_use != max(by_k, key=by_k.get)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        [model] = con.execute("select model from ml.customer_segment_model").fetchone()
    finally:
        con.close()
    assert segments.SegmentModel.from_json(model).k == in_use


def test_pictures_are_written_for_each_mart(materialized):
    result, _, home, _ = materialized
    for name in ("rfm_segments", "funnel_dropoff", "customer_segments"):
        png = home / "reports" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG", name
    # Value per segment reads customer_360, which this copy built before the segments existed.
    assert "segment_value" in _metadata(result, "reports/mart_pictures")
