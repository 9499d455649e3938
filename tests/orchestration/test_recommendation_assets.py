"""Recommendation assets materialized on a copy of the demo warehouse (demo_home stays read-only):
the registered `recommender`, ml.recommendations and the consented email audience."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from mlflow import MlflowClient

from ml.recommendations.placements import DEFAULT_REPURCHASE_CATEGORIES, score_placements
from orchestration.activation.recommendations_email import (
    recommendations_email,
    recommendations_email_consented,
)
from orchestration.recommendations.assets import (
    RECOMMENDATION_COLUMNS,
    cross_sell_rules,
    recommendations,
    recommender_model,
)
from orchestration.recommendations.checks import (
    cross_sell_rules_valid,
    duplicate_ranks,
    recommendations_valid,
    recommender_champion_gate,
)
from orchestration.recommendations.definitions import defs
from orchestration.resources import WarehouseResource

K = 10
ASSETS = [
    cross_sell_rules,
    cross_sell_rules_valid,
    recommender_model,
    recommender_champion_gate,
    recommendations,
    recommendations_valid,
    recommendations_email,
    recommendations_email_consented,
]


def _env(home) -> dict:
    return {
        "C360_HOME": str(home),
        # Where a served model reads customers' histories: this home's copy of the warehouse.
        "C360_WAREHOUSE": str(home / "warehouse.duckdb"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
        "C360_MLFLOW_ARTIFACTS": str(home / "mlflow" / "artifacts"),
        "C360_GIT_SHA": "0" * 40,
    }


@pytest.fixture(scope="module")
def materialized(demo_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("recs_home")
    warehouse = home / "warehouse.duckdb"
    shutil.copy(demo_home / "warehouse.duckdb", warehouse)
    previous_uri = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as env:
        for key, value in _env(home).items():
            env.setenv(key, value)
        resources = {"warehouse": WarehouseResource(path=str(warehouse))}
        first = dg.materialize(ASSETS, resources=resources, raise_on_error=False)
        # Same data again: the new version ties the champion, so it must not replace it.
        second = dg.materialize(
            [recommender_model, recommender_champion_gate], resources=resources, raise_on_error=False
        )
        client = MlflowClient()
        champion = client.get_model_version_by_alias("recommender", "champion")
        challenger = client.get_model_version_by_alias("recommender", "challenger")
        run = client.get_run(champion.run_id)
    mlflow.set_tracking_uri(previous_uri)
    con = duckdb.connect(str(warehouse), read_only=True)
    yield {
        "first": first,
        "second": second,
        "con": con,
        "home": home,
        "champion": champion,
        "challenger": challenger,
        "run": run,
    }
    con.close()


def test_the_platform_holds_the_recommendation_assets_and_their_checks_are_blocking():
    from orchestration.definitions import defs as platform

    keys = {k.to_user_string() for k in platform.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "ml/recommender",
        "ml/cross_sell_rules",
        "ml/recommendations",
        "activation/recommendations_email",
        "intermediate/int_interactions_weighted",
    } <= keys
    assert {key.to_user_string() for a in defs.assets for key in a.keys} <= keys
    for check in (
        recommender_champion_gate,
        cross_sell_rules_valid,
        recommendations_valid,
        recommendations_email_consented,
    ):
        assert all(spec.blocking for spec in check.check_specs)


def test_the_gate_counts_every_row_beyond_the_first_of_a_customer_placement_and_rank():
    con = duckdb.connect()
    con.execute(
        "create table recs as select 'C' || (i % 50) as customer_id, "
        "['home', 'product', 'cart'][i % 3 + 1] as placement, i // 150 as rank "
        "from range(1500) t(i)"
    )
    assert duplicate_ranks(con, "recs") == 0
    # One row twice, another three times: three rows beyond the first of their key.
    con.execute(
        "insert into recs select * from recs where customer_id = 'C1' and rank = 2 and placement = 'product'"
    )
    con.execute("insert into recs select * from recs where customer_id = 'C7' and rank = 0 limit 1")
    con.execute("insert into recs select * from recs where customer_id = 'C7' and rank = 0 limit 1")
    assert duplicate_ranks(con, "recs") == 3


def test_the_check_judges_ranks_on_the_rows_scored_since_it_last_passed_and_products_on_all(demo_copy):
    """One row per rank is judged on the rows scored since the check last passed (the platform's
    own run kept that time); unknown and discontinued products on every row; a failed check keeps
    its watermark."""
    from datetime import timedelta

    home = demo_copy("warehouse.duckdb")
    warehouse = WarehouseResource(path=str(home / "warehouse.duckdb"))
    instance = dg.DagsterInstance.ephemeral()

    def check() -> dict:
        result = recommendations_valid(dg.build_asset_check_context(instance=instance), warehouse=warehouse)
        return {"passed": result.passed, **{k: v.value for k, v in result.metadata.items()}}

    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        last = con.execute("select max(scored_at) from ml.recommendations").fetchone()[0]
        assert con.execute(
            "select loaded_through from quality.gate_watermarks where suite = 'ml.recommendations'"
        ).fetchall() == [(last,)]
    # Nothing scored since the platform's own pass.
    first = check()
    assert first["passed"] and first["rows_judged"] == 0 and first["duplicate_ranks"] == 0

    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        # A repeated rank scored before the watermark passed then; it is not judged again.
        con.execute(
            "insert into ml.recommendations select * replace (? as scored_at) from ml.recommendations limit 1",
            [last - timedelta(days=1)],
        )
    assert check()["passed"]
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("delete from ml.recommendations where scored_at = ?", [last - timedelta(days=1)])
        # Scored since: judged. And a product discontinued today fails every row holding it.
        later = last + timedelta(minutes=5)
        con.execute(
            "insert into ml.recommendations select * replace (? as scored_at) from ml.recommendations "
            "where placement = 'home' limit 2",
            [later],
        )
        shown = con.execute(
            "select product_id, count(*) from ml.recommendations where scored_at < ? group by 1 order by 2 desc, 1 limit 1",
            [later],
        ).fetchone()
        con.execute(
            "create table staging.products_now as select * replace "
            f"(product_id = '{shown[0]}' or is_discontinued as is_discontinued) from staging.stg_catalog__products"
        )
        con.execute("create or replace view staging.stg_catalog__products as from staging.products_now")
    failed = check()
    # Each new row repeats an old row of its customer: both are counted, the old one too.
    assert not failed["passed"] and failed["duplicate_ranks"] == 2
    assert failed["discontinued_products"] >= shown[1] and failed["rows_judged"] == 2

    watermark = "select loaded_through from quality.gate_watermarks where suite = 'ml.recommendations'"
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        # The failed check kept its watermark.
        assert con.execute(watermark).fetchall() == [(last,)]
        con.execute("delete from ml.recommendations where scored_at = ?", [later])
        con.execute(
            "create or replace view staging.stg_catalog__products as select * replace "
            f"(is_discontinued and product_id <> '{shown[0]}' as is_discontinued) from staging.products_now"
        )
    assert check()["passed"]
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        # One customer rescored: after a pass, only their rows are judged.
        customer = con.execute("select min(customer_id) from ml.recommendations").fetchone()[0]
        con.execute("update ml.recommendations set scored_at = ? where customer_id = ?", [later, customer])
        theirs = con.execute(
            "select count(*) from ml.recommendations where customer_id = ?", [customer]
        ).fetchone()[0]
    assert check()["rows_judged"] == theirs
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        assert con.execute(watermark).fetchall() == [(later,)]
    assert check()["rows_judged"] == 0


def test_assets_materialize_and_every_check_passes(materialized):
    result = materialized["first"]
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 4 and all(e.passed for e in evaluations), [e.metadata for e in evaluations]


def test_every_customer_gets_k_products_in_every_placement(materialized):
    con = materialized["con"]
    customers = con.execute("select count(*) from marts.customer_360").fetchone()[0]
    per_placement = dict(
        con.execute(
            "select placement, count(distinct customer_id) from ml.recommendations group by 1"
        ).fetchall()
    )
    assert per_placement == {"home": customers, "product": customers, "cart": customers}
    bad_ranks = con.execute(
        "select count(*) from (select customer_id, placement, count(*) n, max(rank) m "
        "from ml.recommendations group by all) where n <> m or n > ?",
        [K],
    ).fetchone()[0]
    assert bad_ranks == 0


def test_no_unknown_discontinued_or_already_bought_products_outside_repurchase_categories(materialized):
    con = materialized["con"]
    unknown, discontinued = con.execute(
        "select count(*) filter (where p.product_id is null), count(*) filter (where p.is_discontinued) "
        "from ml.recommendations r left join staging.stg_catalog__products p using (product_id)"
    ).fetchone()
    assert unknown == 0 and discontinued == 0
    rebought = con.execute(
        "select distinct p.category from ml.recommendations r "
        "join intermediate.int_interactions_weighted i using (customer_id, product_id) "
        "join staging.stg_catalog__products p using (product_id) where i.purchase_count > 0"
    ).fetchall()
    assert {c for (c,) in rebought} <= set(DEFAULT_REPURCHASE_CATEGORIES)


def test_home_placement_is_personal_for_customers_with_history(materialized):
    con = materialized["con"]
    reasons = dict(
        con.execute(
            "select reason, count(*) from ml.recommendations where placement = 'home' and customer_id in "
            "(select customer_id from intermediate.int_interactions_weighted) group by 1"
        ).fetchall()
    )
    assert reasons.get("personal", 0) > reasons.get("popular_in_segment", 0)


def test_email_audience_holds_exactly_the_home_recommendations_of_consenting_customers(materialized):
    con = materialized["con"]
    audience = con.execute("select customer_id, rank, product_id from activation.recommendations_email").df()
    # Everyone consenting, less the campaign's holdout (activation.campaign_assignments).
    expected = con.execute(
        "select r.customer_id, r.rank, r.product_id from ml.recommendations r "
        "join marts.customer_360 c using (customer_id) where r.placement = 'home' and c.consent_email "
        "and r.customer_id not in (select customer_id from activation.campaign_assignments "
        "where campaign = 'recommendations_email' and campaign_group = 'holdout')"
    ).df()
    assigned = con.execute(
        "select count(*) from activation.campaign_assignments where campaign = 'recommendations_email'"
    ).fetchone()[0]
    assert (
        assigned
        == con.execute(
            "select count(distinct r.customer_id) from ml.recommendations r join marts.customer_360 c "
            "using (customer_id) where r.placement = 'home' and c.consent_email"
        ).fetchone()[0]
    )
    assert len(audience) > 0
    key = ["customer_id", "rank"]
    pd.testing.assert_frame_equal(
        audience.sort_values(key).reset_index(drop=True), expected.sort_values(key).reset_index(drop=True)
    )
    without = con.execute(
        "select count(*) from marts.customer_360 where not consent_email and customer_id in "
        "(select customer_id from activation.recommendations_email)"
    ).fetchone()[0]
    assert without == 0


def test_model_run_carries_lineage_and_the_temporal_metric(materialized):
    run = materialized["run"]
    tags = run.data.tags
    assert tags["c360.source_table"] == "intermediate.int_interactions_weighted"
    assert tags["c360.dataset_digest"] and tags["dagster.run_id"]
    assert tags["git.sha"] == "0" * 40
    assert 0 < run.data.metrics["temporal_ndcg_at_10"] <= 1
    assert "popularity_ndcg_at_10" in run.data.metrics


def test_a_tie_with_the_champion_does_not_promote(materialized):
    assert materialized["second"].success
    assert str(materialized["champion"].version) == "1"
    assert str(materialized["challenger"].version) == "2"
    reason = (
        MlflowClient(tracking_uri=_env(materialized["home"])["MLFLOW_TRACKING_URI"])
        .get_model_version("recommender", "2")
        .tags["c360.promotion"]
    )
    assert "not promoted" in reason


def test_champion_loads_in_a_fresh_process_and_answers_known_and_unknown_customers(materialized):
    con = materialized["con"]
    known = con.execute(
        "select customer_id from intermediate.int_interactions_weighted order by customer_id limit 1"
    ).fetchone()[0]
    history = ",".join(
        p
        for (p,) in con.execute(
            "select product_id from intermediate.int_interactions_weighted where customer_id = ? "
            "order by product_id",
            [known],
        ).fetchall()
    )
    # Without `history` the model looks the customers up in $C360_WAREHOUSE; with it, it reads
    # nothing: a stranger carrying the known customer's history gets the same products.
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model('models:/recommender@champion')\n"
        "frame = pd.DataFrame({'customer_id': [sys.argv[1], 'never-seen-customer']})\n"
        "looked_up = model.predict(frame)\n"
        "given = model.predict(pd.DataFrame({'customer_id': ['carried'], 'history': [sys.argv[2]]}))\n"
        "out = pd.concat([looked_up, given])\n"
        "print(json.dumps(out.astype({'rank': int, 'score': float}).to_dict(orient='records')))\n"
    )
    env = {**os.environ, **_env(materialized["home"])}
    done = subprocess.run(
        [sys.executable, "-c", script, known, history],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = pd.DataFrame(json.loads(done.stdout.strip().splitlines()[-1]))
    assert (out.groupby("customer_id").size() == K).all()
    assert set(out["customer_id"]) == {known, "never-seen-customer", "carried"}
    assert set(out.loc[out["customer_id"] == "never-seen-customer", "reason"]) == {"popular"}
    assert "personal" in set(out.loc[out["customer_id"] == known, "reason"])
    mine = out[out["customer_id"] == known].drop(columns="customer_id").reset_index(drop=True)
    carried = out[out["customer_id"] == "carried"].drop(columns="customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, carried)
    discontinued = {
        p
        for (p,) in con.execute(
            "select product_id from staging.stg_catalog__products where is_discontinued"
        ).fetchall()
    }
    assert not set(out["product_id"]) & discontinued


def test_model_artefacts_hold_no_customer_id(materialized):
    """Erasure must reach the models: no file of the champion holds any customer id of the
    interactions it was trained on (the histories are read from the warehouse when served)."""
    con = materialized["con"]
    uri = _env(materialized["home"])["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri)
    path = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(
                "recommender", materialized["champion"].version
            ),
            tracking_uri=uri,
        )
    )
    files = [f for f in path.rglob("*") if f.is_file()]
    assert any(f.name == "weights.npz" for f in files) and any(f.name == "meta.json" for f in files)
    customers = [
        c
        for (c,) in con.execute(
            "select distinct customer_id from intermediate.int_interactions_weighted"
        ).fetchall()
    ]
    assert len(customers) > 100
    pattern = re.compile(b"|".join(re.escape(c.encode()) for c in customers))
    found = {
        f.relative_to(path).as_posix(): m.group(0) for f in files if (m := pattern.search(f.read_bytes()))
    }
    assert found == {}
    meta = json.loads(next(path.rglob("meta.json")).read_text())
    assert "user_ids" not in meta and meta["item_ids"]


def test_without_interactions_the_model_skips_and_home_falls_back_to_popularity(demo_home, tmp_path):
    """A company whose orders carry no product ids: nothing to train on. Every asset succeeds:
    the model skips with its reason, the gate passes, ml.recommendations serves the catalogue
    by popularity on the home placement; with no product either, an empty table that the
    checks and the email audience accept. No cross-sell rules were mined either (the daily job ran
    before the first weekly retrain): scoring goes on without them."""
    home = tmp_path / "empty_recs"
    home.mkdir()
    warehouse = home / "warehouse.duckdb"
    shutil.copy(demo_home / "warehouse.duckdb", warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from intermediate.int_interactions_weighted")  # the feature views follow
        con.execute("drop table ml.cross_sell_rules")
        assert con.execute("select count(*) from features.recommender_touches").fetchone()[0] == 0
        catalogue = [
            p
            for (p,) in con.execute(
                "select product_id from staging.stg_catalog__products where not is_discontinued "
                "order by product_id"
            ).fetchall()
        ]
        customers = con.execute("select count(*) from marts.customer_360").fetchone()[0]
    assets = [
        recommender_model,
        recommender_champion_gate,
        recommendations,
        recommendations_valid,
        recommendations_email,
        recommendations_email_consented,
    ]
    previous_uri = mlflow.get_tracking_uri()
    instance = dg.DagsterInstance.ephemeral()
    try:
        with pytest.MonkeyPatch.context() as env:
            for key, value in _env(home).items():
                env.setenv(key, value)
            resources = {"warehouse": WarehouseResource(path=str(warehouse))}
            result = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False)
            assert result.success
            assert all(e.passed for e in result.get_asset_check_evaluations())
            model_meta = instance.get_latest_materialization_event(
                recommender_model.key
            ).asset_materialization.metadata
            assert "int_interactions_weighted is empty" in model_meta["skipped"].value
            assert "model_version" not in model_meta
            assert MlflowClient().search_registered_models() == []
            recs_meta = instance.get_latest_materialization_event(
                recommendations.key
            ).asset_materialization.metadata
            assert recs_meta["fallback"].value == "popularity"
            assert "no @champion" in recs_meta["fallback_reason"].value
            with duckdb.connect(str(warehouse), read_only=True) as con:
                served = con.execute(
                    "select customer_id, placement, rank, product_id, reason, model_version "
                    "from ml.recommendations order by customer_id, rank"
                ).df()
                emailed = con.execute("select count(*) from activation.recommendations_email").fetchone()[0]
            assert served["customer_id"].nunique() == customers and len(served) == customers * K
            assert set(served["placement"]) == {"home"} and set(served["reason"]) == {"popular"}
            assert served["model_version"].isna().all()
            # Nothing was bought: the catalogue in its order, the same for everyone.
            assert served.groupby("customer_id")["product_id"].apply(list).map(tuple).nunique() == 1
            assert served["product_id"].head(K).tolist() == catalogue[:K]
            assert emailed > 0

            # No product either: nothing to recommend, an empty table with its columns.
            with duckdb.connect(str(warehouse)) as con:
                con.execute(
                    "create table staging.no_products as select * from staging.stg_catalog__products limit 0"
                )
                con.execute(
                    "create or replace view staging.stg_catalog__products as from staging.no_products"
                )
            again = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False)
            assert again.success
            assert all(e.passed for e in again.get_asset_check_evaluations())
            recs_meta = instance.get_latest_materialization_event(
                recommendations.key
            ).asset_materialization.metadata
            assert "nothing to recommend" in recs_meta["skipped"].value
            with duckdb.connect(str(warehouse), read_only=True) as con:
                columns = [r[0] for r in con.execute("describe ml.recommendations").fetchall()]
                rows = con.execute("select count(*) from ml.recommendations").fetchone()[0]
                emailed = con.execute("select count(*) from activation.recommendations_email").fetchone()[0]
            assert columns == [c for c, _, _ in RECOMMENDATION_COLUMNS]
            assert rows == 0 and emailed == 0
    finally:
        mlflow.set_tracking_uri(previous_uri)


# ---------------------------------------------------------------- batch scoring, no warehouse


def _state() -> dict:
    # Items: 0 p-a (fashion), 1 p-b (grocery), 2 p-c (fashion), 3 p-d (discontinued).
    weights = np.array(
        [[0, 0.1, 0.9, 0.8], [0.2, 0, 0.1, 0], [0.9, 0.1, 0, 0], [0.5, 0, 0, 0]], dtype=np.float32
    )
    transitions = np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32)
    return {
        "weights": sp.csr_matrix(weights),
        "transitions": sp.csr_matrix(transitions),
        "popularity": np.array([4.0, 3.0, 2.0, 9.0], dtype=np.float32),
        "segment_popularity": np.array([[0.0, 1.0, 5.0, 9.0]], dtype=np.float32),
        "meta": {"item_ids": ["p-a", "p-b", "p-c", "p-d"], "segments": ["champions"]},
    }


def test_batch_scoring_respects_history_repurchase_and_availability():
    customers = pd.DataFrame({"customer_id": ["c1", "c2", "c3"], "segment": ["champions", None, "champions"]})
    interactions = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2"],
            "product_id": ["p-a", "p-b", "p-b"],
            "purchase_count": [1, 1, 1],
            "last_event_at": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-01-01"]),
        }
    )
    rules = pd.DataFrame({"antecedent": ["p-b"], "consequent": ["p-a"], "confidence": [0.5]})
    out = pd.concat(
        score_placements(_state(), customers, interactions, rules, {"p-a", "p-b", "p-c"}, {"p-b"}, k=3),
        ignore_index=True,
    )
    assert "p-d" not in set(out["product_id"])  # discontinued, although the most popular
    c1 = out[out["customer_id"] == "c1"]
    # Bought fashion p-a never comes back; bought grocery p-b may.
    assert "p-a" not in set(c1["product_id"])
    home = c1[c1["placement"] == "home"].sort_values("rank")
    assert home.iloc[0]["product_id"] == "p-c" and home.iloc[0]["reason"] == "personal"
    # Anchor = c1's last touched product p-b: the product page never shows the anchor itself.
    assert "p-b" not in set(c1.loc[c1["placement"] != "home", "product_id"])
    cart = c1[c1["placement"] == "cart"].sort_values("rank")
    assert cart.iloc[0]["product_id"] == "p-c" and cart.iloc[0]["reason"] == "next_item"
    c3 = out[(out["customer_id"] == "c3") & (out["placement"] == "home")].sort_values("rank")
    # No history: segment popularity (p-c top in the segment once p-d is unavailable).
    assert list(c3["product_id"]) == ["p-c", "p-b", "p-a"]
    assert set(c3["reason"]) == {"popular_in_segment"}


def test_transitions_counted_in_sql_equal_the_model_fitted_on_every_touch(materialized):
    """The next-item model is fitted from counts made in SQL (every touch need not fit in
    memory at 1M customers): it must equal TransitionModel.fit over all the touches."""
    from ml.recommendations.models import TransitionModel, build_interaction_matrix
    from orchestration.recommendations.assets import (
        INTERACTIONS_TABLE,
        TRANSITIONS_VIEW,
        read_evaluation_touches,
    )

    con = materialized["con"]
    every_touch = read_evaluation_touches(con, 10**9)
    matrix = build_interaction_matrix(
        con.execute(f"select customer_id, product_id, weight from {INTERACTIONS_TABLE}").df()
    )
    expected = TransitionModel().fit(every_touch, matrix).probabilities_
    counts = con.execute(f"select * from {TRANSITIONS_VIEW}").df()
    assert counts["transitions"].sum() > 100, "too few moves for the comparison to mean anything"
    found = TransitionModel.from_counts(counts, matrix).probabilities_
    assert expected.nnz == found.nnz
    np.testing.assert_allclose(found.toarray(), expected.toarray(), rtol=1e-6)


def test_the_evaluation_sample_is_a_fixed_subset_of_whole_customers(materialized):
    from orchestration.recommendations.assets import read_evaluation_touches

    con = materialized["con"]
    every_touch = read_evaluation_touches(con, 10**9)
    customers = every_touch["customer_id"].nunique()
    # The temporal cutoff is taken from int_interactions_weighted: it holds the same latest touch.
    # fetchall: DuckDB 2 refuses a new query (read_evaluation_touches' below) on a connection with
    # an unfinished result, which fetchone leaves.
    latest = con.execute("select max(last_event_at) from intermediate.int_interactions_weighted").fetchall()[
        0
    ][0]
    assert pd.Timestamp(latest) == pd.Timestamp(every_touch["event_time"].max())
    sample = read_evaluation_touches(con, customers // 4)
    assert sample["customer_id"].nunique() == customers // 4
    # Whole histories: each sampled customer keeps every one of their touches.
    kept = every_touch[every_touch["customer_id"].isin(sample["customer_id"])]
    assert len(kept) == len(sample)
    again = read_evaluation_touches(con, customers // 4)
    assert set(again["customer_id"]) == set(sample["customer_id"])


def test_the_evaluation_touches_read_through_arrow_are_the_views_rows(materialized):
    """read_evaluation_touches goes through Arrow with the weight cast to a double (3x faster than
    a DataFrame of the view at 100k customers): the frame must hold the view's rows, in the
    evaluation's order, with the same values and numeric weights."""
    from orchestration.recommendations.assets import TOUCHES_VIEW, read_evaluation_touches

    con = materialized["con"]
    found = read_evaluation_touches(con, 10**9)
    expected = con.execute(f"select * from {TOUCHES_VIEW}").df()
    assert len(found) > 100
    assert list(found.columns) == list(expected.columns)
    assert found["weight"].dtype == np.float64
    order = ["customer_id", "event_time", "product_id"]
    assert found[order].equals(found[order].sort_values(order, ignore_index=True))
    # Rows tied on the order's keys may come in either order: compare as sorted on every column.
    every = list(expected.columns)
    pd.testing.assert_frame_equal(
        found.sort_values(every, ignore_index=True),
        expected.astype({"weight": "float64"}).sort_values(every, ignore_index=True),
        check_dtype=False,
    )


def _fit_inputs(path, products: list[str]):
    """A warehouse holding only what ml/recommender's final fit reads: two customers who touched
    ``products``."""
    con = duckdb.connect(str(path))
    for schema in ("intermediate", "features", "marts", "staging"):
        con.execute(f"create schema {schema}")
    con.execute(
        "create table intermediate.int_interactions_weighted as select * from (values "
        + ", ".join(
            f"('C{c}', '{p}', 1.0::double, 1::bigint, timestamp '2026-01-0{c}')"
            for c in (1, 2)
            for p in products
        )
        + ") t(customer_id, product_id, weight, purchase_count, last_event_at)"
    )
    con.execute(
        "create table features.recommender_transitions (from_product varchar, to_product varchar, transitions bigint)"
    )
    con.execute(
        "create table marts.customer_360 as select * from (values ('C1', 'champions'), ('C2', null)) "
        "t(customer_id, rfm_segment)"
    )
    con.execute(
        "create table staging.stg_catalog__products as select p as product_id, 'toys' as category, "
        f"false as is_discontinued from unnest({products!r}) t(p)"
    )
    con.execute(
        "create table features.category_repurchase_rates as select 'toys' as category, 0.1 as repurchase_rate"
    )
    con.close()


def test_the_final_fit_keeps_no_interactions_table_and_says_why_it_cannot_train(tmp_path):
    """_prepare_fit drops the interactions table (the biggest read at 1M customers) once the
    matrix and digest are made; what the asset needs of it (rows, a reason to skip) stays."""
    from orchestration.recommendations.assets import _prepare_fit
    from orchestration.resources import WarehouseResource

    one = tmp_path / "one.duckdb"
    _fit_inputs(one, ["P1"])
    data = _prepare_fit(WarehouseResource(path=str(one)))
    assert "interactions" not in data and "matrix" not in data
    assert data["interaction_rows"] == 2
    assert "1 product" in data["too_little"]

    two = tmp_path / "two.duckdb"
    _fit_inputs(two, ["P1", "P2"])
    data = _prepare_fit(WarehouseResource(path=str(two)))
    assert "interactions" not in data and data["too_little"] is None
    assert data["interaction_rows"] == 4
    assert data["matrix"].matrix.shape == (2, 2) and data["digest"]
    assert list(data["user_segments"]) == ["champions", None]


def test_the_final_fit_read_coded_by_duckdb_gives_the_arrow_reads_matrix_and_digest(tmp_path):
    """On DuckDB the final fit reads the interactions with both ids coded by DuckDB (at 1M
    customers, 33M rows of string ids no longer go through Arrow beside the evaluation). The
    matrix, its ids and the lineage digest must equal those of the Arrow table read by other
    engines: rows with a missing id dropped, a missing weight as 0, ids in byte order (upper and
    lower case, non-ASCII), and the digest must still move when one weight does."""
    from orchestration.recommendations.assets import (
        INTERACTIONS_TABLE,
        _coded_fit_interactions,
        _fit_interactions_from_arrow,
        _read_fit_interactions,
    )

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema intermediate")
    con.execute(
        f"create table {INTERACTIONS_TABLE} as select * from (values "
        "('c9', 'P5', 1.5, 1::bigint, timestamp '2026-01-02 10:00:00.123456'), "
        "('C1', 'P7', 0.1, 0, timestamp '2026-01-01'), ('C1', 'P10', null, 2, null), "
        "('Ä5', null, 3.0, 1, timestamp '2026-01-03'), (null, 'P5', 2.0, 0, timestamp '2026-01-04'), "
        "('c9', 'P1', 7.0, 3, timestamp '2026-01-02'), ('Ä5', 'P7', 1.0, 1, timestamp '2026-01-01'), "
        "('B2', 'p0', 1.0, null, timestamp '2026-01-05')"
        ") t(customer_id, product_id, weight, purchase_count, last_event_at)"
    )
    coded = _coded_fit_interactions(con)
    arrow = _fit_interactions_from_arrow(_read_fit_interactions(con))
    assert coded["interaction_rows"] == arrow["interaction_rows"] == 8
    assert coded["too_little"] is None and arrow["too_little"] is None
    assert list(coded["matrix"].user_ids) == list(arrow["matrix"].user_ids) == ["B2", "C1", "c9", "Ä5"]
    assert list(coded["matrix"].item_ids) == list(arrow["matrix"].item_ids) == ["P1", "P10", "P5", "P7", "p0"]
    for part in ("indptr", "indices", "data"):
        mine, theirs = getattr(coded["matrix"].matrix, part), getattr(arrow["matrix"].matrix, part)
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), part
    assert coded["matrix"].matrix.nnz == 6
    assert coded["digest"] == arrow["digest"]

    con.execute(f"update {INTERACTIONS_TABLE} set weight = 1.25 where customer_id = 'B2'")
    assert _coded_fit_interactions(con)["digest"] != coded["digest"]
    con.execute(f"update {INTERACTIONS_TABLE} set product_id = 'P1'")
    assert "1 product" in _coded_fit_interactions(con)["too_little"]


class _NotDuckDB:
    """A reader that is not a DuckDB connection (as Spark's): _read_interactions' generic path,
    Arrow strings encoded by Arrow, over the same DuckDB rows."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, params=None):
        return self._con.execute(sql, params)

    def register(self, name, frame):
        self._con.register(name, frame)

    def unregister(self, name):
        self._con.unregister(name)


def test_interactions_read_with_ids_encoded_by_duckdb_equal_the_arrow_encoded_read(tmp_path):
    """The scoring reads the interactions with both ids dictionary-encoded in DuckDB (int32 codes
    and each id once: at 1M customers 2.6 GiB less on the step's peak than 33M strings through
    Arrow). The frame must hold the same values in the same row order as the generic read, with
    missing ids as missing, for the whole table and for a subset of customers."""
    from orchestration.recommendations.assets import _read_interactions

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema intermediate")
    con.execute(
        "create table intermediate.int_interactions_weighted as select * from (values "
        "('C9', 'P5', 1::bigint, timestamp '2026-01-02'), ('C1', 'P7', 0, timestamp '2026-01-01'), "
        "('C1', 'P10', 2, null), ('C5', null, 1, timestamp '2026-01-03'), "
        "(null, 'P5', 0, timestamp '2026-01-04'), ('C9', 'P1', 3, timestamp '2026-01-02'), "
        "('C5', 'P7', 1, timestamp '2026-01-01')"
        ") t(customer_id, product_id, purchase_count, last_event_at)"
    )
    for subset in (None, pd.Index(["C9", "C5", "C404"])):
        coded = _read_interactions(con, subset)
        generic = _read_interactions(_NotDuckDB(con), subset)
        assert len(coded) == (7 if subset is None else 4)
        for name in ("customer_id", "product_id"):
            assert isinstance(coded[name].dtype, pd.CategoricalDtype)
        pd.testing.assert_frame_equal(
            coded.astype({"customer_id": object, "product_id": object}),
            generic.astype({"customer_id": object, "product_id": object}),
        )
    whole = _read_interactions(con)
    assert whole["customer_id"].astype(object).tolist()[:3] == ["C1", "C1", "C5"]
    assert whole["product_id"].astype(object).tolist()[:2] == ["P10", "P7"]  # string order
    assert whole["customer_id"].isna().sum() == 1 and whole["product_id"].isna().sum() == 1
