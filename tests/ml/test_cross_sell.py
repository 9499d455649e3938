"""Cross-sell rules counted in DuckDB over orders and store receipts (ml/cross_sell_rules)."""

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml.recommendations.placements import bundle_recovery
from orchestration.recommendations.assets import cross_sell_rules
from orchestration.recommendations.checks import cross_sell_rules_valid
from orchestration.resources import WarehouseResource

# 10 baskets. A and B go together (4 baskets of 10), C is everywhere, D once with A.
ORDERS = [("O1", "paid"), ("O2", "paid"), ("O3", "paid"), ("O4", "cancelled"), ("O5", "paid"), ("O6", "paid")]
ORDER_ITEMS = [
    ("O1", "A"),
    ("O1", "B"),
    ("O1", "C"),
    ("O2", "A"),
    ("O2", "B"),
    ("O2", "B"),  # a product twice in a basket counts once
    ("O3", "C"),
    ("O4", "A"),
    ("O4", "D"),  # cancelled: not a basket
    ("O5", "C"),
    ("O5", "D"),
    ("O5", "A"),
    ("O6", "C"),
]
RECEIPTS = [
    ("T1", "A"),
    ("T1", "B"),
    ("T1", "C"),
    ("T2", "A"),
    ("T2", "B"),
    ("T3", "C"),
    ("T4", "C"),
    ("T5", "C"),
]


def _warehouse(path) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema staging; create schema ml")
    con.execute("create table staging.stg_ecommerce__orders (order_id varchar, status varchar)")
    con.executemany("insert into staging.stg_ecommerce__orders values (?, ?)", ORDERS)
    con.execute("create table staging.stg_ecommerce__order_items (order_id varchar, product_id varchar)")
    con.executemany("insert into staging.stg_ecommerce__order_items values (?, ?)", ORDER_ITEMS)
    con.execute(
        "create table staging.stg_pos__transaction_lines (transaction_id varchar, product_id varchar)"
    )
    con.executemany("insert into staging.stg_pos__transaction_lines values (?, ?)", RECEIPTS)
    con.close()


def _materialize(path, **config):
    return dg.materialize(
        [cross_sell_rules, cross_sell_rules_valid],
        resources={"warehouse": WarehouseResource(path=str(path))},
        run_config={"ops": {"ml__cross_sell_rules": {"config": config}}} if config else None,
    )


@pytest.fixture
def warehouse(tmp_path, dbt_build_in_subprocess):
    path = tmp_path / "warehouse.duckdb"
    _warehouse(path)
    dbt_build_in_subprocess(path, "cross_sell_pairs", tmp_path)
    return path


def _rules(path) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select * from ml.cross_sell_rules").df().set_index(["antecedent", "consequent"])
    finally:
        con.close()


def test_rules_have_exact_support_confidence_and_lift_over_orders_and_receipts(warehouse):
    result = _materialize(warehouse, min_support=0.0, min_confidence=0.0, min_lift=0.0, min_baskets=1)
    assert result.success
    rules = _rules(warehouse)
    # 10 baskets: A in 5, B in 4, C in 8, D in 1; A&B in 4, A&C in 3, C&D 1, A&D 1.
    a_b = rules.loc[("A", "B")]
    assert a_b["baskets"] == 4
    assert a_b["support"] == pytest.approx(0.4)
    assert a_b["confidence"] == pytest.approx(4 / 5)
    assert a_b["lift"] == pytest.approx((4 / 5) / (4 / 10))
    assert rules.loc[("B", "A"), "confidence"] == pytest.approx(1.0)
    assert rules.loc[("A", "C"), "lift"] == pytest.approx((3 / 5) / (8 / 10))
    assert ("A", "A") not in rules.index
    [check] = result.get_asset_check_evaluations()
    assert check.passed


def test_thresholds_drop_weak_and_rare_pairs(warehouse):
    assert _materialize(warehouse, min_support=0.2, min_confidence=0.5, min_lift=1.2, min_baskets=2).success
    rules = _rules(warehouse)
    # A->C and C->A are below lift 1 (C is in almost every basket); D pairs are too rare.
    assert set(rules.index) == {("A", "B"), ("B", "A")}


def test_cancelled_orders_are_not_baskets(warehouse):
    assert _materialize(warehouse, min_support=0.0, min_confidence=0.0, min_lift=0.0, min_baskets=1).success
    rules = _rules(warehouse)
    assert rules.loc[("D", "A"), "baskets"] == 1  # only O5; the cancelled O4 does not count


def test_bundle_recovery_counts_planted_pairs_among_the_top_rules_in_either_direction():
    rules = pd.DataFrame(
        {
            "antecedent": ["B", "X", "C", "Y"],
            "consequent": ["A", "Y", "D", "Z"],
            "support": [0.1, 0.1, 0.1, 0.1],
            "lift": [9.0, 8.0, 7.0, 1.5],
        }
    )
    bundles = pd.DataFrame({"bundle_id": ["B1", "B1", "B2", "B2"], "product_id": ["A", "B", "C", "Q"]})
    recovery = bundle_recovery(rules, bundles, top_n=3)
    assert recovery["bundle_pairs"] == 2
    assert recovery["found"] == 1 and recovery["share"] == pytest.approx(0.5)
