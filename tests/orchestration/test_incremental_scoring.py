"""Scoring only what changed (orchestration/incremental_scoring.py): after a few customers' inputs
change, ml.churn_scores, ml.clv and ml.recommendations equal a from-scratch scoring, floats
exactly, and only those customers were rescored; a new champion version rescores everyone."""

import shutil

import dagster as dg
import duckdb
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml import churn, registry
from ml.recommendations.placements import anchors
from orchestration.churn.assets import churn_scores
from orchestration.clv.assets import clv_scores
from orchestration.incremental_scoring import input_hashes, row_hashes
from orchestration.recommendations.assets import load_champion, recommendations
from orchestration.resources import WarehouseResource

TABLES = {
    "ml__churn_scores": ("ml.churn_scores", "customer_id"),
    "ml__clv": ("ml.clv", "customer_id"),
    "ml__recommendations": ("ml.recommendations", "customer_id, placement, rank"),
}


def score(warehouse) -> dict[str, dict]:
    """Materialize the three scoring assets; each one's materialization metadata by step."""
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [churn_scores, clv_scores, recommendations],
            resources={"warehouse": WarehouseResource(path=str(warehouse))},
            instance=instance,
        )
    return {
        e.step_key: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def tables(warehouse) -> dict[str, pd.DataFrame]:
    """The score tables, without when each row was scored."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            step: con.execute(f"select * exclude (scored_at) from {table} order by {order}").df()
            for step, (table, order) in TABLES.items()
        }


def change_a_few_customers(warehouse) -> dict[str, set[str]]:
    """Change three customers' churn features, two customers' purchase amounts (their CLV
    monetary value; the as-of date stays) and two customers' interactions."""
    with duckdb.connect(str(warehouse)) as con:
        latest = "(select max(as_of_date) from features.churn_features)"
        churn_ids = [
            r[0]
            for r in con.execute(
                f"select customer_id from features.churn_features where as_of_date = {latest} "
                "order by customer_id limit 3"
            ).fetchall()
        ]
        con.execute(
            f"update features.churn_features set visits_30d = visits_30d + 5 "
            f"where as_of_date = {latest} and customer_id in (select unnest(?))",
            [churn_ids],
        )
        clv_ids = [
            r[0]
            for r in con.execute(
                "select customer_id from features.clv_customer_summary where frequency > 0 "
                "order by customer_id desc limit 2"
            ).fetchall()
        ]
        con.execute(
            "update intermediate.int_purchases_unioned set amount = amount + 17 where customer_id in (select unnest(?))",
            [clv_ids],
        )
        rec_ids = [
            r[0]
            for r in con.execute(
                "select customer_id from intermediate.int_interactions_weighted "
                "group by customer_id order by count(*) desc, customer_id limit 2"
            ).fetchall()
        ]
        con.execute(
            "update intermediate.int_interactions_weighted set purchase_count = purchase_count + 1 "
            "where customer_id in (select unnest(?))",
            [rec_ids],
        )
    return {"ml__churn_scores": set(churn_ids), "ml__clv": set(clv_ids), "ml__recommendations": set(rec_ids)}


def newest(warehouse) -> dict[str, set[str]]:
    """Per score table, the customers of its newest ``scored_at`` (the last run's rescores)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            step: {
                r[0]
                for r in con.execute(
                    f"select distinct customer_id from {table} where scored_at = (select max(scored_at) from {table})"
                ).fetchall()
            }
            for step, (table, _) in TABLES.items()
        }


def change_some_rule_lists(warehouse) -> tuple[set[str], set[str]]:
    """Change the cross-sell rule lists of three anchor products (a confidence moved, a rule
    added, a rule dropped) and of one product nobody is anchored on, as a daily recount does;
    the changed anchors and the customers anchored on them (the placements' own anchor)."""
    _, model, _ = load_champion()
    with duckdb.connect(str(warehouse)) as con:
        customers = con.execute("select customer_id from marts.customer_360 order by customer_id").df()
        interactions = con.execute(
            "select customer_id, product_id, purchase_count, last_event_at "
            "from intermediate.int_interactions_weighted "
            "order by customer_id, product_id, last_event_at, purchase_count"
        ).df()
        anchor = anchors(model.state["meta"]["item_ids"], customers["customer_id"], interactions)
        antecedents = [
            r[0] for r in con.execute("select distinct antecedent from ml.cross_sell_rules").fetchall()
        ]
        anchored = [a for a in anchor.value_counts().index if a in set(antecedents)]
        unused = sorted(set(antecedents) - set(anchor.dropna()))
        assert len(anchored) >= 3 and unused, "the demo needs rules on anchors and off them"
        moved, added, dropped = anchored[:3]
        con.execute(
            "update ml.cross_sell_rules set confidence = confidence * 0.5 where antecedent in (?, ?)",
            [moved, unused[0]],
        )
        con.execute(
            "insert into ml.cross_sell_rules select ?, consequent, baskets, support, 0.99, lift "
            "from ml.cross_sell_rules where antecedent <> ? and consequent <> ? limit 1",
            [added, added, added],
        )
        con.execute(
            "delete from ml.cross_sell_rules where antecedent = ? and consequent = "
            "(select min(consequent) from ml.cross_sell_rules where antecedent = ?)",
            [dropped, dropped],
        )
    changed = {moved, added, dropped}
    return changed, set(anchor.index[anchor.isin(changed)])


@pytest.fixture(scope="module")
def runs(demo_copy, tmp_path_factory):
    yield from scoring_runs(demo_copy(), tmp_path_factory.mktemp("scratch"))


def scoring_runs(home, scratch_dir):
    """Score, score again, change a few customers, score; score a copy from scratch; promote a
    new churn version and score."""
    warehouse = home / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("C360_HOME", str(home))
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("C360_WAREHOUSE", raising=False)
        first = score(warehouse)
        unchanged = score(warehouse)
        changed = change_a_few_customers(warehouse)
        daily = score(warehouse)
        daily_newest = newest(warehouse)
        rule_anchors, rule_customers = change_some_rule_lists(warehouse)
        rules_run = score(warehouse)
        rules_newest = newest(warehouse)
        with duckdb.connect(str(warehouse), read_only=True) as con:
            rules_newest_placements = {
                r[0]
                for r in con.execute(
                    "select distinct placement from ml.recommendations "
                    "where scored_at = (select max(scored_at) from ml.recommendations)"
                ).fetchall()
            }
        incremental = tables(warehouse)
        scratch = scratch_dir / "warehouse.duckdb"
        shutil.copy(warehouse, scratch)
        with duckdb.connect(str(scratch)) as con:
            for table, _ in TABLES.values():
                con.execute(f"drop table {table}")
        from_scratch = score(scratch)
        # A new champion version of churn (the same run registered again) rescores everyone.
        registry.configure()
        client = MlflowClient()
        champion = client.get_model_version_by_alias(churn.MODEL_NAME, registry.CHAMPION)
        new = client.create_model_version(churn.MODEL_NAME, champion.source, champion.run_id)
        client.set_registered_model_alias(churn.MODEL_NAME, registry.CHAMPION, new.version)
        promoted = score(warehouse)
        yield {
            "first": first,
            "unchanged": unchanged,
            "changed": changed,
            "daily": daily,
            "daily_newest": daily_newest,
            "rule_anchors": rule_anchors,
            "rule_customers": rule_customers,
            "rules_run": rules_run,
            "rules_newest": rules_newest,
            "rules_newest_placements": rules_newest_placements,
            "incremental": incremental,
            "from_scratch": from_scratch,
            "scratch_tables": tables(scratch),
            "promoted": promoted,
            "new_version": int(new.version),
            "warehouse": warehouse,
        }


def test_a_run_with_unchanged_inputs_rescores_no_one(runs):
    for step in TABLES:
        assert runs["first"][step]["dagster/row_count"] > 0, step
        assert runs["unchanged"][step]["customers_rescored"] == 0, step
        assert runs["unchanged"][step]["rows_kept"] == runs["first"][step]["dagster/row_count"], step


def test_only_customers_whose_inputs_changed_are_rescored(runs):
    for step in TABLES:
        assert runs["daily"][step]["customers_rescored"] == len(runs["changed"][step]), step
        # The rescored rows are the changed customers' (their scored_at is the newest).
        assert runs["daily_newest"][step] == runs["changed"][step], step
    assert runs["daily"]["ml__recommendations"]["customers_rescored_for_rules"] == 0


def test_a_daily_run_reads_only_the_rescored_customers_interactions(runs):
    """A scoring from scratch reads every interaction; the daily run only the changed customers'
    rows (whom to rescore comes from a summary in DuckDB, interaction_summary)."""
    with duckdb.connect(str(runs["warehouse"]), read_only=True) as con:
        every = con.execute("select count(*) from intermediate.int_interactions_weighted").fetchone()[0]
        changed = con.execute(
            "select count(*) from intermediate.int_interactions_weighted where customer_id in (select unnest(?))",
            [sorted(runs["changed"]["ml__recommendations"])],
        ).fetchone()[0]
    assert runs["from_scratch"]["ml__recommendations"]["interaction_rows_read"] == every
    assert runs["unchanged"]["ml__recommendations"]["interaction_rows_read"] == 0
    assert 0 < runs["daily"]["ml__recommendations"]["interaction_rows_read"] == changed < every


def test_changed_rule_lists_rescore_only_the_customers_anchored_on_them(runs):
    recs = runs["rules_run"]["ml__recommendations"]
    expected = runs["rule_customers"]
    assert expected and len(expected) < recs["customers"]
    assert recs["customers_rescored"] == recs["customers_rescored_for_rules"] == len(expected)
    assert recs["anchors_rescored_for_rules"] == len(runs["rule_anchors"])
    assert recs["rescored_everyone_because"] == ""
    assert runs["rules_newest"]["ml__recommendations"] == expected
    # Only their cart placement reads the rules: home and product rows are kept (hashes updated,
    # which the from-scratch comparison checks).
    assert runs["rules_newest_placements"] == {"cart"}
    assert 0 < recs["rows_rescored"] <= 10 * len(expected)
    for step in ("ml__churn_scores", "ml__clv"):
        assert runs["rules_run"][step]["customers_rescored"] == 0, step


def test_incremental_tables_equal_a_from_scratch_scoring_exactly(runs):
    for step in TABLES:
        incremental, scratch = runs["incremental"][step], runs["scratch_tables"][step]
        assert len(incremental) > 0, step
        pd.testing.assert_frame_equal(incremental, scratch, check_exact=True, obj=step)
        assert runs["from_scratch"][step]["rescored_everyone_because"] == "no scores yet"


def test_a_new_champion_version_rescores_everyone(runs):
    promoted = runs["promoted"]["ml__churn_scores"]
    assert promoted["customers_rescored"] == promoted["dagster/row_count"] > 0
    assert promoted["rescored_everyone_because"] == "champion version changed"
    with duckdb.connect(str(runs["warehouse"]), read_only=True) as con:
        versions = con.execute("select distinct model_version from ml.churn_scores").fetchall()
    assert versions == [(runs["new_version"],)]
    # The other models' champions did not move: nothing of theirs was rescored.
    assert runs["promoted"]["ml__clv"]["customers_rescored"] == 0


def test_hashes_see_a_last_bit_float_change_and_a_detail_row_change():
    frame = pd.DataFrame({"customer_id": ["a", "b"], "x": [0.1, 0.2]})
    nudged = frame.assign(x=[0.1, 0.20000000000000004])  # the next double after 0.2
    assert (row_hashes(frame) == row_hashes(nudged)).tolist() == [True, False]
    details = pd.DataFrame({"customer_id": ["a", "a", "b"], "product_id": ["p", "q", "p"]})
    moved = details.assign(product_id=["p", "r", "p"])
    before, after = input_hashes(frame, details), input_hashes(frame, moved)
    assert (before == after).tolist() == [False, True]
    assert not (input_hashes(frame, details, shared=(3,)) == input_hashes(frame, details, shared=(4,))).any()


def test_the_interaction_summary_finds_the_anchors_the_placements_pick():
    """interaction_summary (DuckDB) picks each customer's anchor as anchors() (pandas) does: the
    model's item of their latest touch, ties to the last in row order, a missing time as the
    latest; products outside the model are skipped. Its hash moves with any row's change."""
    from orchestration.recommendations.assets import interaction_summary

    rows = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b", "c", "c", "d", "e", "e"],
            "product_id": ["p1", "p2", "p3", "p1", "p2", "p1", "p9", "p9", "p1", "p2"],
            "purchase_count": [1, 0, 2, 0, 0, 1, 1, 1, 0, 3],
            "last_event_at": pd.to_datetime(
                [
                    "2025-01-02",
                    "2025-01-03",
                    "2025-01-03",  # a: tie at the latest time: p3, the last in row order
                    "2025-01-05",
                    None,  # b: no time counts as the latest
                    "2025-01-01",
                    "2025-02-01",  # c: p9 is not a model item
                    "2025-01-01",  # d: only p9: no anchor
                    "2025-01-01",
                    "2025-01-01",
                ]
            ),
        }
    )
    items = ["p1", "p2", "p3"]
    customers = pd.Series(["a", "b", "c", "d", "e", "f"])
    with duckdb.connect() as con:
        con.execute("create schema intermediate")
        con.execute("create table intermediate.int_interactions_weighted as select * from rows")
        hashes, anchor = interaction_summary(con, items, customers)
        con.execute(
            "update intermediate.int_interactions_weighted set purchase_count = 5 where customer_id = 'e' and product_id = 'p1'"
        )
        moved, _ = interaction_summary(con, items, customers)
        # The model's own item order does not matter: a tie goes to the greater product id.
        _, shuffled = interaction_summary(con, ["p3", "p1", "p2"], customers)
    expected = [a if isinstance(a, str) else None for a in anchors(items, customers, rows)]
    assert shuffled.tolist() == expected
    assert anchor.tolist() == expected == ["p3", "p2", "p1", None, "p2", None]
    assert (hashes == 0).tolist() == [False] * 5 + [True]
    assert (hashes == moved).tolist() == [True, True, True, True, False, True]
