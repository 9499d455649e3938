"""Landing files -> raw: contract checks, quarantine and conservation, on real DuckDB files."""

from pathlib import Path

import duckdb
import pytest

from c360.contracts import SOURCES
from c360.ingest.loader import SchemaDriftError, load_file, load_source, quarantine_duplicate_orders
from c360.privacy.keys import Keyring

PRODUCTS = "product_id,product_name,category,brand,price,launched_at,discontinued\nP1,Phone,electronics,A,100.00,2024-01-01,false\n"
ORDER_HEADER = ",".join(SOURCES["ecommerce_orders"].column_names)


def _write(folder: Path, source: str, name: str, text: str) -> Path:
    path = folder / source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def landing(tmp_path):
    return tmp_path / "landing"


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield con
    con.close()


KEYS = Keyring.generate()


def test_wrong_header_fails_naming_file_and_column_and_loads_nothing(con, landing):
    header = ORDER_HEADER.replace("ordered_at", "order_time")
    path = _write(
        landing,
        "ecommerce_orders",
        "bad.csv",
        header + "\nO1,U1,,,2025-01-01 10:00:00,web,paid,card,,5.00,CNY,100000\n",
    )
    with pytest.raises(SchemaDriftError) as err:
        load_file(con, "ecommerce_orders", path, KEYS, landing_root=landing)
    assert "bad.csv" in str(err.value) and "'ordered_at'" in str(err.value)
    assert con.execute("select count(*) from raw.ecommerce_orders").fetchall()[0][0] == 0
    assert con.execute("select count(*) from raw._load_log").fetchall()[0][0] == 0


def test_retyped_column_fails_and_earlier_files_stay(con, landing):
    good = _write(landing, "products", "a.csv", PRODUCTS)
    load_file(con, "products", good, KEYS, landing_root=landing)
    retyped = "product_id,product_name,category,brand,price,launched_at,discontinued\n" + "".join(
        f"P{i},X,toys,B,cheap,2024-01-01,false\n" for i in range(2, 8)
    )
    path = _write(landing, "products", "b.csv", retyped)
    with pytest.raises(SchemaDriftError) as err:
        load_file(con, "products", path, KEYS, landing_root=landing)
    assert "'price'" in str(err.value)
    assert con.execute("select product_id from raw.products").fetchall() == [("P1",)]


def test_extra_column_is_reported_and_ignored(con, landing):
    path = _write(
        landing,
        "products",
        "x.csv",
        PRODUCTS.replace("discontinued\n", "discontinued,colour\n").replace("false\n", "false,red\n"),
    )
    result = load_file(con, "products", path, KEYS, landing_root=landing)
    assert result.extra_columns == ["colour"] and result.rows_loaded == 1


def test_each_defect_goes_to_quarantine_and_rows_are_conserved(con, landing):
    _write(landing, "products", "p.csv", PRODUCTS)
    orders = (
        ORDER_HEADER
        + "\n"
        + "\n".join(
            [
                "O1,U1, John@Example.com ,+86 138 1234 5678,2025-01-01 10:00:00,web,paid,card,,100.00,CNY,100000",
                "O2,U1,john@example.com,13812345678,2025-01-01 10:00:20,web,paid,card,,100.00,CNY,100000",
                "O3,U2,bad@,,2025-01-02 10:00:00,web,paid,card,,5.00,CNY,100000",
                "O4,,x@y.com,,2025-01-02 10:00:00,web,paid,card,,5.00,CNY,100000",
                "O5,U3,x@y.com,,2031-01-02 10:00:00,web,paid,card,,5.00,CNY,100000",
                "O6,U3,x@y.com,,2025-01-03 10:00:00,web,paid,card,,-5.00,CNY,100000",
                "O7,U3,x@y.com,12345,2025-01-04 10:00:00,web,paid,card,,5.00,CNY,100000",
                "O8,U3,x@y.com,,2025-13-45 10:00:00,web,paid,card,,5.00,CNY,100000",
                "O1,U9,z@y.com,,2025-01-05 10:00:00,web,paid,card,,5.00,CNY,100000",
            ]
        )
        + "\n"
    )
    _write(landing, "ecommerce_orders", "o.csv", orders)
    items = (
        ",".join(SOURCES["ecommerce_order_items"].column_names)
        + "\n"
        + "\n".join(
            [
                "O1-1,O1,1,P1,1,100.00,0",
                "O2-1,O2,1,P1,1,100.00,0",
                "O4-1,O4,1,P1,1,5.00,0",
                "O1-2,O1,2,P404,1,5.00,0",
                "O1-3,O1,3,P1,0,5.00,0",
                "O1-4,O1,4,P1,1,5.00,0,extra",
            ]
        )
        + "\n"
    )
    _write(landing, "ecommerce_order_items", "i.csv", items)
    for source in ("products", "ecommerce_orders", "ecommerce_order_items"):
        loads, errors = load_source(con, source, landing, KEYS, run_id="t")
        assert not errors and all(l.conserved for l in loads)
    assert quarantine_duplicate_orders(con, "t") == 1

    got = dict(con.execute("select record_id, rule from quality.quarantine").fetchall())
    assert got == {
        "O2": "duplicate",
        "O2-1": "duplicate",
        "O3": "invalid_email",
        "O4": "missing_required",
        "O5": "future_timestamp",
        "O6": "negative_amount",
        "O7": "invalid_phone",
        "line:9": "malformed_line",
        "O1": "duplicate_key",  # the second row with key O1; the first one loads
        "O4-1": "orphan_order",
        "O1-2": "unknown_product",
        "O1-3": "non_positive_quantity",
        "line:7": "malformed_line",
    }
    assert con.execute("select order_id from raw.ecommerce_orders").fetchall() == [("O1",)]
    for source in ("ecommerce_orders", "ecommerce_order_items"):
        rows_in, loaded, quarantined = con.execute(
            "select sum(rows_in), sum(rows_loaded), sum(rows_quarantined) from raw._load_log where source = ?",
            [source],
        ).fetchall()[0]
        in_raw = con.execute(f"select count(*) from raw.{source}").fetchall()[0][0]
        assert rows_in == loaded + quarantined and loaded == in_raw


def _order(order_id, account, at, amount):
    return f"{order_id},{account},{account.lower()}@example.com,,2025-01-01 {at},web,paid,card,,{amount},CNY,100000"


def _line(order_id, n=1, product="P1", quantity=1, price="5.00"):
    return f"{order_id}-{n},{order_id},{n},{product},{quantity},{price},0"


def _load_day(con, landing, day, orders, lines):
    name = f"{day:%Y%m%d%H}.csv"
    _write(landing, "ecommerce_orders", name, ORDER_HEADER + "\n" + "\n".join(orders) + "\n")
    items_header = ",".join(SOURCES["ecommerce_order_items"].column_names)
    _write(landing, "ecommerce_order_items", name, items_header + "\n" + "\n".join(lines) + "\n")
    for source in ("products", "ecommerce_orders", "ecommerce_order_items"):
        loads, errors = load_source(con, source, landing, KEYS, run_id=name, now=day)
        assert not errors and all(l.conserved for l in loads)


def _duplicates(con) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "select record_id from quality.quarantine where rule = 'duplicate' and source = 'ecommerce_orders'"
        ).fetchall()
    }


def test_a_later_pass_judges_the_accounts_with_new_orders_or_lines_as_a_whole_table_pass_would(con, landing):
    from datetime import datetime

    _write(landing, "products", "p.csv", PRODUCTS)
    _load_day(
        con,
        landing,
        datetime(2026, 1, 1),
        [
            _order("A1", "UA", "10:00:00", "5.00"),
            _order("D2", "UD", "09:00:40", "5.00"),
            _order("E1", "UE", "08:00:00", "5.00"),
            _order("E2", "UE", "08:00:20", "5.00"),  # re-submits E1, within the first day
            _order("F1", "UF", "07:00:00", "5.00"),
            _order("F2", "UF", "07:00:30", "5.00"),  # its line comes a day late
            _order("H1", "UH", "11:00:00", "5.00"),
            _order("H2", "UH", "11:10:00", "5.00"),  # ten minutes apart: two orders at 60 s
        ],
        [_line("A1"), _line("D2"), _line("E1"), _line("E2"), _line("F1"), _line("H1"), _line("H2")],
    )
    # A later file the same day: the pass's watermark is its load time, after the rows above.
    _load_day(con, landing, datetime(2026, 1, 1, 12), [_order("Z1", "UZ", "12:00:00", "5.00")], [_line("Z1")])
    assert quarantine_duplicate_orders(con, "day1") == 1
    assert _duplicates(con) == {"E2"}

    _load_day(
        con,
        landing,
        datetime(2026, 1, 2),
        [
            _order("A2", "UA", "10:00:30", "5.00"),  # re-submits A1, loaded the day before
            _order("D1", "UD", "09:00:10", "5.00"),  # late, and earlier than D2: D2 is the copy
            _order("G1", "UG", "06:00:00", "5.00"),
        ],
        [_line("A2"), _line("D1"), _line("F2"), _line("G1")],  # F2's basket is now F1's
    )
    assert quarantine_duplicate_orders(con, "day2") == 3
    assert _duplicates(con) == {"E2", "A2", "D2", "F2"}
    # Moved with their lines, and the load log still balances.
    moved_lines = "select count(*) from raw.ecommerce_order_items where order_id in ('A2', 'D2', 'F2')"
    assert con.execute(moved_lines).fetchall() == [(0,)]
    assert con.execute(
        "select count(*) from raw._load_log where rows_in <> rows_loaded + rows_quarantined"
    ).fetchall() == [(0,)]

    # A whole-table pass (no watermark) finds nothing the increment missed.
    checked = con.execute("select loaded_through from raw._duplicate_orders_checked order by 1").fetchall()
    assert checked == [(datetime(2026, 1, 1, 12),), (datetime(2026, 1, 2),)]
    con.execute("delete from raw._duplicate_orders_checked")
    assert quarantine_duplicate_orders(con, "whole") == 0
    # Another window judges the whole table again: H2, loaded on the first day, is now a copy.
    assert quarantine_duplicate_orders(con, "wider", window_s=3600) == 1
    assert _duplicates(con) == {"E2", "A2", "D2", "F2", "H2"}


def test_same_file_is_loaded_once(con, landing):
    _write(landing, "products", "p.csv", PRODUCTS)
    first, _ = load_source(con, "products", landing, KEYS)
    again, _ = load_source(con, "products", landing, KEYS)
    assert not first[0].skipped and again[0].skipped
    assert con.execute("select count(*) from raw.products").fetchall()[0][0] == 1


def test_a_file_seen_unchanged_is_not_read_again_and_one_changed_or_renamed_is(con, landing, monkeypatch):
    import os
    import shutil

    from c360.ingest import encoding

    path = _write(landing, "products", "p.csv", PRODUCTS)
    load_source(con, "products", landing, KEYS)
    reads = []
    scan_bytes = encoding.scan_bytes
    monkeypatch.setattr(encoding, "scan_bytes", lambda p: reads.append(p.name) or scan_bytes(p))

    # Same name, size and modification time: skipped without reading its bytes.
    [again], _ = load_source(con, "products", landing, KEYS)
    assert again.skipped and again.status == "loaded" and reads == []
    # The same bytes under a second name: read once, skipped as loaded, then known by name.
    shutil.copy2(path, path.with_name("p_resent.csv"))
    assert [f.skipped for f in load_source(con, "products", landing, KEYS)[0]] == [True, True]
    assert reads == ["p_resent.csv"]
    load_source(con, "products", landing, KEYS)
    assert reads == ["p_resent.csv"]
    # Overwritten under its old name (new bytes, new modification time): read and loaded.
    path.write_text(PRODUCTS.replace("P1,Phone", "P2,Tablet"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    [changed, _], _ = load_source(con, "products", landing, KEYS)
    assert not changed.skipped and reads[-1] == "p.csv"
    assert con.execute("select count(*) from raw.products").fetchall()[0][0] == 2


def test_sensitive_values_are_protected_and_never_stored_in_clear(con, landing):
    header = ",".join(SOURCES["crm_customers"].column_names)
    row = "CRM1,Wei,Zhang,wei.zhang@example.com,13812345678,1990-01-01,M,Beijing,Beijing,100000,2020-01-01,web,LC00000001,11010119900101123X,4111111111111111,2024-01-01 00:00:00"
    _write(landing, "crm_customers", "c.csv", header + "\n" + row + "\n")
    load_source(con, "crm_customers", landing, KEYS)
    con.execute("checkpoint")
    stored = con.execute("select * from raw.crm_customers").fetchall()[0]
    text = " ".join(str(v) for v in stored)
    for secret in ("wei.zhang@example.com", "13812345678", "11010119900101123X", "4111111111111111"):
        assert secret not in text
    masked = con.execute("select email_masked, bank_card_masked from raw.crm_customers").fetchall()[0]
    assert masked == ("w***@example.com", "**** **** **** 1111")


def test_files_load_together_and_one_that_cannot_be_parsed_stops_only_itself(con, landing):
    header = "product_id,product_name,category,brand,price,launched_at,discontinued\n"
    row = "{},Case,electronics,A,5.00,2024-01-01,false\n"
    _write(landing, "products", "a.csv", header + row.format("P1") + row.format("P2"))
    # Mixed line endings: DuckDB cannot parse the file at all, so the statement reading the
    # three files fails and each is read on its own.
    path = landing / "products" / "b.csv"
    path.write_bytes(
        (header.replace("\n", "\r\n") + row.format("P3").replace("\n", "\r\n") + row.format("P4")).encode()
    )
    _write(landing, "products", "c.csv", header + row.format("P2") + row.format("P5") + row.format("P5"))

    loads, errors = load_source(con, "products", landing, KEYS, run_id="t")
    assert [l.status for l in loads] == ["loaded", "rejected", "loaded"]
    assert [e.file for e in errors] == [path] and "cannot be parsed as CSV" in errors[0].reason
    assert [(l.rows_in, l.rows_loaded, l.rows_quarantined) for l in loads] == [
        (2, 2, 0),
        (0, 0, 0),
        (3, 1, 2),
    ]
    assert con.execute("select product_id from raw.products order by 1").fetchall() == [
        ("P1",),
        ("P2",),
        ("P5",),
    ]
    # The first row with a key loads, across files as within one; later ones are quarantined.
    assert con.execute(
        "select source_file, record_id, rule from quality.quarantine order by 2"
    ).fetchall() == [
        ("products/c.csv", "P2", "duplicate_key"),
        ("products/c.csv", "P5", "duplicate_key"),
    ]
