import shutil

import duckdb
import pytest

from c360.contracts import SOURCES
from c360.privacy.scan import scan_file
from expectations.runner import daily_totals, drift_bounds, load_suite, validate_suite
from expectations.suite import Drift


@pytest.fixture
def warehouse(loaded_home, tmp_path):
    """A private copy, so a test may plant bad rows."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(loaded_home / "warehouse.duckdb", path)
    con = duckdb.connect(str(path))
    yield con
    con.close()


@pytest.mark.parametrize("source", list(SOURCES))
def test_every_raw_suite_passes_on_clean_generated_data(warehouse, source, tmp_path):
    outcome = validate_suite(warehouse, load_suite(f"raw.{source}"))
    assert outcome.failed == []
    assert outcome.rows_validated == warehouse.execute(f"select count(*) from raw.{source}").fetchone()[0]


class RecordingConnection:
    """A DuckDB connection that counts the rows each statement hands to Python, and refuses any
    other way of reading results (Arrow readers, relations), so nothing escapes the count."""

    READERS = ("sql", "query", "table", "view", "from_query", "arrow", "to_arrow_reader", "fetchnumpy", "pl")

    def __init__(self, con):
        self._con, self.fetched = con, []

    def execute(self, *args, **kwargs):
        self._con.execute(*args, **kwargs)
        return self

    def fetchall(self):
        rows = self._con.fetchall()
        self.fetched.append(len(rows))
        return rows

    def df(self):
        frame = self._con.df()
        self.fetched.append(len(frame))
        return frame

    def __getattr__(self, name):
        if name in self.READERS or name.startswith(("fetch", "to_")):
            raise AssertionError(f"the gate read results through {name}")
        return getattr(self._con, name)


def test_row_rules_are_counted_in_duckdb_and_no_row_reaches_python(warehouse):
    # Was: web events validated in batches, never the whole table at once. Now no batch at all:
    # every statement the gate runs hands back a few aggregate rows, never the table's rows.
    total = warehouse.execute("select count(*) from raw.web_events").fetchone()[0]
    days = warehouse.execute(
        "select date_diff('day', min(occurred_at), max(occurred_at)) + 1 from raw.web_events"
    ).fetchone()[0]
    recording = RecordingConnection(warehouse)
    outcome = validate_suite(recording, load_suite("raw.web_events"))
    assert outcome.success and outcome.rows_validated == total > 10_000
    assert all(e["evaluated"] == total for e in outcome.expectations if e["part"] == "rows")
    # The drift part reads one total per calendar day; every other read is a handful of rows
    # (one row of counts, DESCRIBE's row per column).
    assert max(recording.fetched) <= max(days, 40) < total / 20


def test_negative_amount_fails_the_amount_range_only(warehouse):
    warehouse.execute(
        "update raw.ecommerce_orders set amount = -5 where order_id in "
        "(select order_id from raw.ecommerce_orders limit 3)"
    )
    outcome = validate_suite(warehouse, load_suite("raw.ecommerce_orders"))
    assert [(e["expectation"], e["column"], e["unexpected"]) for e in outcome.failed] == [
        ("expect_column_values_to_be_between", "amount", 3)
    ]


def test_future_timestamps_are_caught_inside_and_beyond_the_nanosecond_range(warehouse):
    # The runner hands GX nanosecond timestamps (vectorised); a year-9999 value does not fit
    # nanoseconds and must still be judged, on the exact microsecond column.
    for ts, offset, future in (("now() + interval 30 day", 0, 2), ("timestamp '9999-01-01 00:00:00'", 2, 3)):
        warehouse.execute(
            f"update raw.service_tickets set opened_at = {ts} where ticket_id in (select ticket_id "
            f"from raw.service_tickets order by ticket_id limit {future - offset} offset {offset})"
        )
        outcome = validate_suite(warehouse, load_suite("raw.service_tickets"))
        assert [(e["column"], e["unexpected"]) for e in outcome.failed if e["part"] == "rows"] == [
            ("opened_at", future)
        ]


def test_zero_quantity_fails_the_quantity_range(warehouse):
    # quantity is an INTEGER (int32 in Arrow): the runner widens it so GX compares vectorised.
    warehouse.execute(
        "update raw.ecommerce_order_items set quantity = 0 where order_item_id in "
        "(select order_item_id from raw.ecommerce_order_items order by order_item_id limit 3)"
    )
    outcome = validate_suite(warehouse, load_suite("raw.ecommerce_order_items"))
    assert [(e["column"], e["unexpected"]) for e in outcome.failed] == [("quantity", 3)]


def test_plaintext_email_in_a_hash_column_fails_the_hash_format(warehouse):
    warehouse.execute(
        "update raw.service_tickets set email_hash = 'li.wei@example.com' where ticket_id in "
        "(select ticket_id from raw.service_tickets where email_hash is not null limit 1)"
    )
    outcome = validate_suite(warehouse, load_suite("raw.service_tickets"))
    assert [(e["expectation"], e["column"]) for e in outcome.failed] == [
        ("expect_column_values_to_match_regex", "email_hash")
    ]


def test_duplicate_key_and_orphan_line_fail_their_sql_facts(warehouse):
    warehouse.execute("insert into raw.ecommerce_order_items select * from raw.ecommerce_order_items limit 1")
    warehouse.execute(
        "update raw.ecommerce_order_items set order_id = 'SO-NOPE' where order_item_id in "
        "(select order_item_id from raw.ecommerce_order_items order by order_item_id desc limit 2)"
    )
    outcome = validate_suite(warehouse, load_suite("raw.ecommerce_order_items"))
    assert {e["column"] for e in outcome.failed} == {"duplicate_keys", "lines_without_order"}


def test_unknown_event_type_fails_accepted_values(warehouse):
    warehouse.execute(
        "update raw.web_events set event_type = 'teleport' where event_id in "
        "(select event_id from raw.web_events limit 4)"
    )
    outcome = validate_suite(warehouse, load_suite("raw.web_events"))
    assert [(e["column"], e["unexpected"]) for e in outcome.failed] == [("event_type", 4)]


def test_drift_flags_a_day_whose_revenue_jumps_a_hundredfold():
    con = duckdb.connect()
    con.execute(
        "create table t as select timestamp '2025-01-01 12:00:00' + to_days(i // 40) as ts, "
        "100 + (i % 7) * 10 as amount from range(40 * 70) r(i)"
    )
    drift = Drift(time_column="ts", value="amount", label="revenue")
    assert drift_bounds(daily_totals(con, "t", drift), drift)["days_outside"] == []
    con.execute("update t set amount = amount * 100 where ts >= timestamp '2025-03-11'")
    flagged = drift_bounds(daily_totals(con, "t", drift), drift)["days_outside"]
    assert len(flagged) == 1 and flagged[0].startswith("2025-03-11")


def test_a_missing_day_of_events_fails_the_drift_expectation(warehouse):
    last = warehouse.execute("select max(cast(occurred_at as date)) from raw.web_events").fetchone()[0]
    warehouse.execute("delete from raw.web_events where cast(occurred_at as date) = ? - 2", [last])
    outcome = validate_suite(warehouse, load_suite("raw.web_events"))
    assert [(e["part"], e["column"]) for e in outcome.failed] == [("drift", "daily_events")]


def test_data_docs_are_built_and_hold_no_plaintext_personal_data(warehouse, tmp_path):
    warehouse.execute(
        "update raw.crm_customers set email_masked = 'wang.fang@example.com', "
        "phone_hash = '13812345678' where customer_ref = 'CRM0000002'"
    )
    docs = tmp_path / "data_docs"
    outcome = validate_suite(warehouse, load_suite("raw.crm_customers"), docs_root=docs)
    assert not outcome.success
    assert outcome.docs_page.exists() and outcome.docs_page.is_relative_to(docs)
    # Only what GX writes from our results: its bundled fonts trip the text scanner (binary noise).
    findings = [f for path in docs.rglob("*") if path.suffix in (".html", ".json") for f in scan_file(path)]
    assert findings == []


def test_incremental_gate_validates_only_rows_loaded_since_it_last_passed(warehouse):
    suite = load_suite("raw.ecommerce_orders")
    total = warehouse.execute("select count(*) from raw.ecommerce_orders").fetchall()[0][0]

    first = validate_suite(warehouse, suite, incremental=True)
    assert first.success and first.rows_validated == total and first.rows_loaded_after is None
    nothing_new = validate_suite(warehouse, suite, incremental=True)
    assert nothing_new.success and nothing_new.rows_validated == 0

    # Three new rows arrive, one with a negative amount: only they are validated, the gate
    # fails, and the watermark stays, so the next run judges them again.
    warehouse.execute(
        "insert into raw.ecommerce_orders select * replace ('new-' || order_id as order_id, "
        "case when row_number() over () = 1 then -5 else amount end as amount, "
        "now()::timestamp + interval 1 second as _loaded_at) from raw.ecommerce_orders limit 3"
    )
    for _ in range(2):
        outcome = validate_suite(warehouse, suite, incremental=True)
        assert outcome.rows_validated == 3 and not outcome.success
        assert [(e["column"], e["unexpected"]) for e in outcome.failed if e["part"] == "rows"] == [
            ("amount", 1)
        ]

    # The bad row is corrected: the three pass and the watermark moves past them.
    warehouse.execute("update raw.ecommerce_orders set amount = 5 where amount < 0")
    assert validate_suite(warehouse, suite, incremental=True).rows_validated == 3
    assert validate_suite(warehouse, suite, incremental=True).rows_validated == 0

    # Rules changed since the watermark was written: every row is validated again.
    warehouse.execute("update quality.gate_watermarks set rules_fingerprint = 'older-rules'")
    assert validate_suite(warehouse, suite, incremental=True).rows_validated == total + 3


def test_keys_and_references_are_judged_on_the_increment_once_the_gate_has_passed(warehouse):
    suite = load_suite("raw.ecommerce_order_items")
    first = validate_suite(warehouse, suite, incremental=True)
    assert first.success and not first.facts_on_increment  # first pass: the whole table
    assert validate_suite(warehouse, suite, incremental=True).facts_on_increment

    # Two new rows: an old line sent again under its old key, and a line of an order nobody has.
    later = warehouse.execute(
        "select max(_loaded_at) + interval 1 second from raw.ecommerce_order_items"
    ).fetchone()[0]
    warehouse.execute(
        "insert into raw.ecommerce_order_items select * replace (?::timestamp as _loaded_at) "
        "from (select * from raw.ecommerce_order_items order by order_item_id limit 1)",
        [later],
    )
    warehouse.execute(
        "insert into raw.ecommerce_order_items select * replace ('new-line' as order_item_id, "
        "'SO-NOPE' as order_id, ?::timestamp as _loaded_at) "
        "from (select * from raw.ecommerce_order_items order by order_item_id desc limit 1)",
        [later],
    )
    outcome = validate_suite(warehouse, suite, incremental=True)
    assert outcome.facts_on_increment and outcome.rows_validated == 2
    assert {e["column"] for e in outcome.failed} == {"duplicate_keys", "lines_without_order"}
    # The increment's verdict is the whole table's.
    whole = validate_suite(warehouse, suite)
    assert {e["column"] for e in whole.failed} == {"duplicate_keys", "lines_without_order"}

    # The missing order arrives and the repeated line is removed: the increment passes, judged
    # again because the failed gate kept its watermark.
    warehouse.execute(
        "insert into raw.ecommerce_orders select * replace ('SO-NOPE' as order_id) "
        "from raw.ecommerce_orders limit 1"
    )
    warehouse.execute(
        "delete from raw.ecommerce_order_items where _loaded_at = ? and order_item_id <> 'new-line'", [later]
    )
    again = validate_suite(warehouse, suite, incremental=True)
    assert again.success and again.rows_validated == 1 and again.facts_on_increment


def test_identity_map_rows_whose_raw_record_is_gone_fail_the_dangling_facts(demo_copy):
    """The mart suite's map -> raw direction: a device and an order in the map that no raw row
    carries (an erasure that missed the map, a model that invents records) each fail their fact."""
    home = demo_copy("warehouse.duckdb")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        assert validate_suite(con, load_suite("marts.identity_map")).success
        # marts.identity_map is a view of int_identity_records_matched: the rows go there.
        for source, record in (("web_events", "DEV-GONE"), ("ecommerce_orders", "SO-GONE")):
            con.execute(
                "insert into intermediate.int_identity_records_matched select * replace (? as source_record_id) "
                "from intermediate.int_identity_records_matched where source = ? limit 1",
                [record, source],
            )
        outcome = validate_suite(con, load_suite("marts.identity_map"))
    finally:
        con.close()
    assert {e["column"] for e in outcome.failed} == {"dangling:web_events", "dangling:ecommerce_orders"}


def test_the_identity_map_gate_judges_the_records_written_since_it_last_passed(demo_copy):
    """Incremental, as the raw gates: the first pass judges the whole map and keeps the latest
    `resolved_at` it judged; a later pass judges the records written since (a new build's), with
    duplicates, dangling records and unmapped raw ids all still caught, and keeps its watermark
    when it fails."""
    from datetime import timedelta

    home = demo_copy("warehouse.duckdb")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    matched = "intermediate.int_identity_records_matched"
    suite = load_suite("marts.identity_map")
    try:
        records, built = con.execute(f"select count(*), max(resolved_at) from {matched}").fetchall()[0]
        # The platform's own gate ran so: it kept the latest build it judged.
        watermark = "select loaded_through from quality.gate_watermarks where suite = 'marts.identity_map'"
        assert con.execute(watermark).fetchall() == [(built,)]
        con.execute("delete from quality.gate_watermarks where suite = 'marts.identity_map'")
        first = validate_suite(con, suite, incremental=True)
        assert first.success and first.rows_validated == records and not first.facts_on_increment

        # A record written before the watermark is not judged again (it passed): a bad id there
        # fails only a whole-table validation.
        con.execute(
            f"insert into {matched} select * replace ('not-an-id' as customer_id, 'DEV-OLD' as source_record_id) "
            f"from {matched} where source = 'web_events' limit 1"
        )
        unchanged = validate_suite(con, suite, incremental=True)
        assert unchanged.success and unchanged.rows_validated == 0 and unchanged.facts_on_increment
        assert {e["column"] for e in validate_suite(con, suite).failed} >= {
            "customer_id",
            "dangling:web_events",
        }
        con.execute(f"delete from {matched} where source_record_id = 'DEV-OLD'")

        # A later build writes three records: one no raw row carries, one a second copy of an
        # order's record, one with a bad id; and an order's record went missing.
        later = built + timedelta(minutes=5)
        con.execute(
            f"insert into {matched} select * replace ('DEV-GONE' as source_record_id, ? as resolved_at) "
            f"from {matched} where source = 'web_events' limit 1",
            [later],
        )
        copied, lost = (
            r[0]
            for r in con.execute(
                f"select source_record_id from {matched} where source = 'ecommerce_orders' order by 1 limit 2"
            ).fetchall()
        )
        con.execute(
            f"insert into {matched} select * replace (? as resolved_at) from {matched} "
            "where source = 'ecommerce_orders' and source_record_id = ?",
            [later, copied],
        )
        con.execute(
            f"insert into {matched} select * replace ('nope' as customer_id, 'SUP-NEW' as source_record_id, "
            "? as resolved_at) from {matched} where source = 'service_tickets' limit 1".replace(
                "{matched}", matched
            ),
            [later],
        )
        lost_row = con.execute(
            f"select * from {matched} where source = 'ecommerce_orders' and source_record_id = ?", [lost]
        ).fetchall()
        con.execute(
            f"delete from {matched} where source = 'ecommerce_orders' and source_record_id = ?", [lost]
        )
        failed = validate_suite(con, suite, incremental=True)
        assert failed.facts_on_increment and failed.rows_validated == 3
        expected = {
            "customer_id",
            "dangling:web_events",
            "dangling:service_tickets",
            "duplicate_records",
            "unmapped:ecommerce_orders",
        }
        assert {e["column"] for e in failed.failed} == expected
        # The increment's verdict is the whole map's.
        assert {e["column"] for e in validate_suite(con, suite).failed} == expected

        # Mended: judged again from the same watermark (the failed pass kept it), and passes.
        con.execute(f"delete from {matched} where resolved_at = ?", [later])
        placeholders = ", ".join("?" * len(lost_row[0]))
        con.execute(f"insert into {matched} values ({placeholders})", list(lost_row[0]))
        con.execute(
            f"insert into {matched} select * replace (? as resolved_at) from {matched} "
            "where source = 'ecommerce_orders' and source_record_id = ?",
            [later, lost],
        )
        con.execute(
            f"delete from {matched} where source = 'ecommerce_orders' and source_record_id = ? and resolved_at < ?",
            [lost, later],
        )
        mended = validate_suite(con, suite, incremental=True)
        assert mended.success and mended.rows_validated == 1 and mended.facts_on_increment
    finally:
        con.close()


def _one_query_per_fact(con) -> dict[str, int]:
    """The identity map's facts as they were computed before they shared one join: a scan of the
    map and of a raw table's ids per fact (the reference for the shared join)."""
    from expectations.identity_map import RECORD_IDS

    facts = {
        "row_count": "select count(*) from marts.identity_map",
        "duplicate_records": "select count(*) - count(distinct (source, source_record_id)) from marts.identity_map",
    }
    for source, column in RECORD_IDS.items():
        if source not in ("web_events", "pos_transactions"):
            facts[f"unmapped:{source}"] = (
                f'select count(distinct "{column}") from raw.{source} r where not exists (select 1 from '
                f"marts.identity_map m where m.source = '{source}' and m.source_record_id = r.\"{column}\")"
            )
        facts[f"dangling:{source}"] = (
            f"select count(*) from marts.identity_map m where m.source = '{source}' and not exists "
            f'(select 1 from (select distinct "{column}" as id from raw.{source}) r where r.id = m.source_record_id)'
        )
    return {name: con.execute(sql).fetchall()[0][0] for name, sql in facts.items()}


def test_identity_map_facts_from_one_shared_join_equal_one_query_per_fact(demo_copy):
    from expectations.runner import facts_relation

    home = demo_copy("warehouse.duckdb")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        suite = load_suite("marts.identity_map")
        matched = "intermediate.int_identity_records_matched"
        # Planted: two map rows no raw row carries, one of them twice (a duplicate), a record with
        # no id, raw orders and a consent event the map lacks, and a raw order with no id.
        for source, record, copies in (("web_events", "DEV-GONE", 1), ("pos_transactions", "T-GONE", 2)):
            for _ in range(copies):
                con.execute(
                    f"insert into {matched} select * replace (? as source_record_id) from {matched} "
                    "where source = ? limit 1",
                    [record, source],
                )
        con.execute(
            f"insert into {matched} select * replace (null as source_record_id) from {matched} "
            "where source = 'crm_customers' limit 1"
        )
        con.execute(
            f"delete from {matched} where source = 'ecommerce_orders' and source_record_id in "
            f"(select source_record_id from {matched} where source = 'ecommerce_orders' limit 3)"
        )
        con.execute(
            f"delete from {matched} where source = 'marketing_consent' and source_record_id in "
            f"(select source_record_id from {matched} where source = 'marketing_consent' limit 1)"
        )
        con.execute(
            "insert into raw.ecommerce_orders select * replace (null as order_id) from raw.ecommerce_orders limit 1"
        )
        expected = _one_query_per_fact(con)
        columns = [d[0] for d in con.execute(f"select * from {facts_relation(suite)}").description]
        got = dict(
            zip(columns, con.execute(f"select * from {facts_relation(suite)}").fetchall()[0], strict=True)
        )
    finally:
        con.close()
    assert got == expected
    assert expected["dangling:web_events"] == 1 and expected["dangling:pos_transactions"] == 2
    assert expected["dangling:crm_customers"] == 1  # the record with no id
    assert expected["duplicate_records"] == 1
    assert expected["unmapped:ecommerce_orders"] == 3 and expected["unmapped:marketing_consent"] == 1


def test_the_data_docs_index_lists_only_the_newest_results(warehouse, tmp_path, monkeypatch):
    """Listing a result reads it back: without a limit every gate's index build grew with the
    history (a run stores a result per suite)."""
    from expectations import runner

    monkeypatch.setattr(runner, "DOCS_INDEX_RESULTS", 2)
    docs = tmp_path / "data_docs"
    suite = load_suite("raw.products")
    for run in ("first", "second", "third"):
        outcome = validate_suite(warehouse, suite, docs_root=docs, run_name=f"run-{run}")
    index = outcome.docs_index.read_text()
    assert "run-third" in index and "run-second" in index
    assert "run-first" not in index
    # The oldest result is still stored and its page still in the site.
    stored = list((docs / "gx" / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == 3
    assert any("run-first" in str(page) for page in outcome.docs_index.parent.rglob("*.html"))
