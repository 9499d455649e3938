"""The whole asset graph, materialized on small generated data in a temporary C360_HOME."""

import duckdb


def test_whole_graph_materializes(demo_run):
    assert demo_run["success"], demo_run["failures"]
    assert not demo_run["checks_failed"]
    for key in ("raw/crm_customers", "raw/ecommerce_orders", "marts/customer_360", "marts/customer_rfm"):
        assert key in demo_run["materialized"]


def test_customer_360_has_one_row_per_known_person(demo_home):
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    rows, distinct = con.execute(
        "select count(*), count(distinct customer_id) from marts.customer_360"
    ).fetchall()[0]
    assert rows == distinct > 0
    # Every purchase's revenue is attributed to exactly one customer.
    revenue_360, revenue_purchases = con.execute(
        "select (select sum(revenue) from marts.customer_360), "
        "(select round(sum(amount), 2) from intermediate.int_purchases_unioned)"
    ).fetchall()[0]
    assert abs(revenue_360 - revenue_purchases) < 1.0


def test_no_plaintext_sensitive_values_in_the_warehouse(demo_home):
    from c360.privacy.scan import scan_duckdb

    findings = scan_duckdb(demo_home / "warehouse.duckdb")
    assert findings == [], findings


def test_identity_resolution_meets_targets_on_generated_data(demo_home):
    from cli.evals.identity import pairwise_scores

    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    scores = pairwise_scores(con, demo_home / "landing" / "_truth" / "identity.csv")
    assert scores["precision"] >= 0.995
    assert scores["recall"] >= 0.98


def test_customer_360_carries_clv_for_buyers(demo_home):
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    buyers, with_clv = con.execute(
        "select count(*) filter (where orders_total > 0), count(clv) filter (where orders_total > 0) "
        "from marts.customer_360"
    ).fetchall()[0]
    assert buyers > 0 and with_clv == buyers
