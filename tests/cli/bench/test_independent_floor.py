"""The independent floor rebuilds customer_360 from the landing files with its own SQL and
union-find, and its comparison with the platform's marts can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.bench import independent_floor


@pytest.fixture(scope="module")
def platform_warehouse(demo_copy) -> Path:
    # A private copy: attaching the shared home's warehouse would contend with its writers.
    return demo_copy("warehouse.duckdb") / "warehouse.duckdb"


@pytest.fixture(scope="module")
def built(demo_home, tmp_path_factory):
    con, result = independent_floor.run(
        demo_home / "landing", tmp_path_factory.mktemp("independent") / "independent.duckdb"
    )
    yield con, result
    con.close()


def test_independent_customer_360_equals_the_platforms_column_by_column(built, platform_warehouse):
    con, result = built
    comparison = independent_floor.compare(con, platform_warehouse)
    assert comparison["mismatches"] == {}
    assert comparison["unpaired"] == comparison["platform_unpaired"] == 0
    assert comparison["customers"] == comparison["platform_customers"] == result["customers"] > 0
    assert comparison["matched"] is True
    # The comparison covered real data, not empty columns.
    revenue, orders = con.execute("select sum(revenue), sum(orders_total) from customer_360").fetchone()
    assert revenue > 0 and orders > 0
    assert set(independent_floor.BEHAVIOUR_COLUMNS) <= set(comparison["columns_compared"])
    sessions, ranked, segments, top = con.execute(
        "select sum(web_sessions), count(r_score), count(distinct rfm_segment), count(top_category) "
        "from customer_360"
    ).fetchone()
    assert sessions > 0 and ranked > 0 and segments > 1 and top > 0


def test_a_planted_difference_is_reported(built, platform_warehouse):
    con, _ = built
    con.execute("create table _saved as select * from customer_360")
    try:
        con.execute(
            "update customer_360 set revenue = revenue + 0.01 "
            "where person = (select min(person) from customer_360 where orders_total > 0)"
        )
        con.execute(
            "update customer_360 set consent_sms = not consent_sms where person in "
            "(select person from customer_360 order by person limit 2)"
        )
        # A session cut differently (one more session for three people who browse).
        con.execute(
            "update customer_360 set web_sessions = web_sessions + 1 where person in "
            "(select person from customer_360 where web_sessions > 0 order by person limit 3)"
        )
        comparison = independent_floor.compare(con, platform_warehouse)
    finally:
        con.execute("create or replace table customer_360 as select * from _saved")
        con.execute("drop table _saved")
    assert comparison["matched"] is False
    assert comparison["mismatches"]["revenue"]["rows"] == 1
    assert comparison["mismatches"]["consent_sms"]["rows"] == 2
    assert comparison["mismatches"]["web_sessions"]["rows"] == 3
    assert set(comparison["mismatches"]) == {"revenue", "consent_sms", "web_sessions"}


def test_a_person_whose_records_differ_is_reported_unpaired(built, platform_warehouse):
    con, _ = built
    con.execute("create table _saved as select * from record_person")
    try:
        # One review fewer on this side: its person no longer holds the platform customer's records.
        con.execute(
            "delete from record_person where source = 'product_reviews' and record_id = "
            "(select min(record_id) from record_person where source = 'product_reviews')"
        )
        comparison = independent_floor.compare(con, platform_warehouse)
    finally:
        con.execute("create or replace table record_person as select * from _saved")
        con.execute("drop table _saved")
    assert comparison["matched"] is False
    assert comparison["unpaired"] == comparison["platform_unpaired"] == 1
