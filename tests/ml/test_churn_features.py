"""features.churn_features (dbt) on a copy of the demo warehouse: shape, names and no leakage."""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from c360.settings import DBT_PROJECT_DIR
from ml import churn

KEY = ["customer_id", "as_of_date"]


def _build_features(warehouse, tmp_path, as_of: str) -> pd.DataFrame:
    # A separate dbt process: in-process dbt-duckdb keeps its connection to the file open.
    env = dict(os.environ, C360_WAREHOUSE=str(warehouse))
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "run",
            "--select",
            "churn_features",
            "--vars",
            f"{{as_of_date: '{as_of}'}}",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path / "dbt_target"),
            "--log-path",
            str(tmp_path / "dbt_logs"),
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("select * from features.churn_features order by as_of_date, customer_id").df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo_features(demo_home):
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("select * from features.churn_features").df()
    finally:
        con.close()


def test_one_row_per_customer_and_snapshot_with_the_model_features(demo_features):
    assert not demo_features.duplicated(KEY).any()
    assert set(churn.FEATURES) <= set(demo_features.columns)
    snapshots = sorted(pd.to_datetime(demo_features["as_of_date"]).unique())
    assert len(snapshots) >= 4
    assert {(b - a).days for a, b in itertools.pairwise(snapshots)} == {90}
    latest = demo_features[pd.to_datetime(demo_features["as_of_date"]) == snapshots[-1]]
    # The latest window is not over yet; the one 90 days earlier is exactly observed.
    assert latest["churned"].isna().all()
    assert (
        demo_features.loc[pd.to_datetime(demo_features["as_of_date"]) < snapshots[-1], "churned"]
        .notna()
        .all()
    )


def test_latest_snapshot_holds_every_customer_of_customer_360(demo_home, demo_features):
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    try:
        customers = set(con.execute("select customer_id from marts.customer_360").df()["customer_id"])
    finally:
        con.close()
    latest = demo_features[demo_features["as_of_date"] == demo_features["as_of_date"].max()]
    assert set(latest["customer_id"]) == customers


def test_review_sentiment_is_the_star_score_rescaled(demo_features):
    rated = demo_features.dropna(subset=["avg_review_score"])
    assert len(rated) > 0
    assert ((rated["avg_review_score"] - 3) / 2).to_numpy() == pytest.approx(
        rated["review_sentiment"].to_numpy()
    )
    assert rated["review_sentiment"].between(-1, 1).all()


def test_records_after_the_as_of_date_change_no_feature(demo_home, tmp_path):
    """Append purchases, sessions with abandoned carts, tickets-free noise after the cutoff:
    every feature at every snapshot stays the same; only labels may see the future."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_home / "warehouse.duckdb", warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        as_of = con.execute(
            "select cast(max(purchased_at) as date) - 120 from intermediate.int_purchases_unioned"
        ).fetchone()[0]
    finally:
        con.close()
    before = _build_features(warehouse, tmp_path, str(as_of))

    con = duckdb.connect(str(warehouse))
    try:
        # A purchase on the as-of date itself and later ones, for every customer who ever bought.
        con.execute(
            f"""
            insert into intermediate.int_purchases_unioned by name
            select 'late:' || customer_id || ':' || k as purchase_id, customer_id, 'store' as channel,
                   timestamp '{as_of}' + interval (k * 5) day as purchased_at, 999.0 as amount,
                   'cash' as payment_method, true as used_promo
            from (select distinct customer_id from intermediate.int_purchases_unioned), range(3) as r(k)
            """
        )
        # Sessions on known devices after the cutoff: an abandoned cart, and a cart paid later.
        con.execute(
            f"""
            insert into raw.web_events by name
            select 'late-' || device_id || '-' || e as event_id,
                   timestamp '{as_of}' + interval 1 hour + interval (e) minute as occurred_at,
                   'late-' || device_id as session_id, device_id,
                   ['page_view', 'add_to_cart', 'checkout'][e + 1] as event_type, 'web' as channel
            from (select distinct device_id from raw.web_events), range(3) as r(e)
            """
        )
    finally:
        con.close()
    after = _build_features(warehouse, tmp_path, str(as_of))

    merged = before.merge(after, on=KEY, suffixes=("_before", "_after"), validate="one_to_one")
    assert len(merged) == len(before) == len(after)
    for feature in churn.FEATURES:
        pd.testing.assert_series_equal(
            merged[f"{feature}_before"], merged[f"{feature}_after"], check_names=False, obj=feature
        )
    # The appended purchases were visible to the labels: churn at the as-of date fell.
    at_cutoff = merged[pd.to_datetime(merged["as_of_date"]) == pd.Timestamp(as_of)]
    assert (at_cutoff["churned_after"] == 0).sum() > (at_cutoff["churned_before"] == 0).sum()
