"""Landing files as exports really come: byte-order marks, GB18030 and Windows-1252 text, NUL
bytes, empty files, optional columns left out, date-only timestamps, and a bad file beside good
ones. Real DuckDB files; every landing file is written by hand here."""

from pathlib import Path

import duckdb
import pytest

from c360.contracts import SOURCES
from c360.ingest import loader
from c360.ingest.loader import (
    FileRejected,
    SchemaDriftError,
    load_file,
    load_source,
    quarantine_duplicate_orders,
)
from c360.privacy.keys import Keyring

KEYS = Keyring.generate()
CRM = "customer_ref,first_name,last_name,email,city,signup_date,updated_at"
ORDER_HEADER = "order_id,account_id,ordered_at,channel,status,amount"
PRODUCTS = "product_id,product_name,category,price\nP1,Phone,electronics,100.00\n"


def _write(landing: Path, source: str, name: str, data: bytes) -> Path:
    path = landing / source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def landing(tmp_path):
    return tmp_path / "landing"


@pytest.fixture
def scratch(tmp_path):
    return tmp_path / "home" / "scratch"


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield con
    con.close()


def _log(con, source="crm_customers"):
    return con.execute(
        "select file, status, reason, encoding, nul_bytes_removed, rows_in, rows_loaded, rows_quarantined "
        "from raw._load_log where source = ? order by file, loaded_at",
        [source],
    ).fetchall()


def _names(con):
    return con.execute(
        "select customer_ref, first_name, last_name, city from raw.crm_customers order by 1"
    ).fetchall()


def test_utf8_byte_order_mark_is_not_part_of_the_first_column(con, landing, scratch):
    text = CRM + "\nC1,Ann,Lee,ann@example.com,Paris,2020-01-01,2024-01-01 10:00:00\n"
    path = _write(landing, "crm_customers", "bom.csv", b"\xef\xbb\xbf" + text.encode())
    result = load_file(con, "crm_customers", path, KEYS, landing_root=landing, scratch_root=scratch)
    assert (result.rows_loaded, result.encoding) == (1, "utf-8-sig")
    assert _names(con) == [("C1", "Ann", "Lee", "Paris")]
    assert not scratch.exists()  # valid UTF-8 is read in place


def test_gb18030_file_keeps_its_chinese_names(con, landing, scratch):
    text = (
        CRM + "\n"
        "C1,伟,张,zhang.wei@example.com,北京,2020-01-01,2024-01-01 10:00:00\n"
        "C2,娜,李,,上海市,2020-01-02,2024-01-02 11:00:00\n"
        "C3,芳,王,wang@example.com,广州,2020-01-03,2024-01-03 12:00:00\n"
    )
    data = text.encode("gb18030")
    data.decode("cp1252")  # the trap: Windows-1252 reads GB18030 bytes without an error
    path = _write(landing, "crm_customers", "gb.csv", data)
    loads, errors = load_source(con, "crm_customers", landing, KEYS, scratch_root=scratch)
    assert errors == [] and loads[0].encoding == "gb18030" and loads[0].conserved
    assert _names(con) == [
        ("C1", "伟", "张", "北京"),
        ("C2", "娜", "李", "上海市"),
        ("C3", "芳", "王", "广州"),
    ]
    assert con.execute("select email_masked from raw.crm_customers where customer_ref = 'C1'").fetchone() == (
        "z***@example.com",
    )
    assert _log(con)[0][:4] == ("crm_customers/gb.csv", "loaded", None, "gb18030")
    assert path.read_bytes() == data and not scratch.exists()  # the UTF-8 copy is gone


def test_latin1_file_keeps_its_accented_names(con, landing, scratch):
    text = (
        CRM + "\n"
        "C1,Renée,Müller,,Zürich,2020-01-01,2024-01-01 10:00:00\n"
        "C2,Joséphine,Muñoz,jose@example.com,São Paulo,2020-01-02,2024-01-02 11:00:00\n"
        "C3,Aurélien,Núñez,,Málaga,2020-01-03,2024-01-03 12:00:00\n"
    )
    data = text.encode("latin-1")
    data.decode("gb18030")  # the trap: GB18030 reads these Latin-1 bytes without an error
    _write(landing, "crm_customers", "latin.csv", data)
    loads, errors = load_source(con, "crm_customers", landing, KEYS, scratch_root=scratch)
    assert errors == [] and loads[0].encoding == "cp1252"
    assert _names(con) == [
        ("C1", "Renée", "Müller", "Zürich"),
        ("C2", "Joséphine", "Muñoz", "São Paulo"),
        ("C3", "Aurélien", "Núñez", "Málaga"),
    ]


def test_nul_bytes_are_removed_and_counted(con, landing, scratch):
    data = (CRM.replace("city", "ci\0ty") + "\nC1,Bo\0b,Lee,,Rome,2020-01-01,2024-01-01 10:00:00\n").encode()
    _write(landing, "crm_customers", "nul.csv", data)
    loads, errors = load_source(con, "crm_customers", landing, KEYS, scratch_root=scratch)
    assert errors == [] and loads[0].nul_bytes_removed == 2
    assert _names(con) == [("C1", "Bob", "Lee", "Rome")]
    assert _log(con)[0][1:5] == ("loaded", None, "utf-8", 2)


def test_a_file_mostly_of_nul_bytes_is_rejected_as_not_text(con, landing):
    _write(landing, "crm_customers", "utf16.csv", CRM.encode("utf-16-le"))
    _, [error] = load_source(con, "crm_customers", landing, KEYS)
    assert "utf16.csv" in str(error) and "UTF-16 without a byte-order mark" in error.reason
    assert _log(con)[0][1] == "rejected"


def test_zero_byte_file_is_logged_empty_not_an_error(con, landing):
    _write(landing, "crm_customers", "empty.csv", b"")
    _write(landing, "crm_customers", "header_only.csv", (CRM + "\n").encode())
    loads, errors = load_source(con, "crm_customers", landing, KEYS)
    assert errors == [] and [l.status for l in loads] == ["empty", "empty"]
    assert [row[:3] for row in _log(con)] == [
        ("crm_customers/empty.csv", "empty", "0 bytes"),
        ("crm_customers/header_only.csv", "empty", "header only, no rows"),
    ]
    again, _ = load_source(con, "crm_customers", landing, KEYS)
    assert all(l.skipped for l in again) and len(_log(con)) == 2


def test_optional_columns_may_be_left_out_and_load_as_null(con, landing):
    _write(landing, "products", "p.csv", PRODUCTS.encode())
    assert load_source(con, "products", landing, KEYS)[1] == []
    assert con.execute(
        "select product_id, brand, launched_at, discontinued from raw.products"
    ).fetchall() == [("P1", None, None, None)]


def test_a_missing_required_column_still_fails_naming_file_and_column(con, landing):
    path = _write(landing, "products", "p.csv", b"product_id,product_name,price\nP1,Phone,1.0\n")
    with pytest.raises(SchemaDriftError) as err:
        load_file(con, "products", path, KEYS, landing_root=landing)
    assert (
        str(err.value)
        == f"{path}: column 'category' is missing from the header. Nothing was loaded from this file."
    )


def test_bad_file_beside_good_ones_is_logged_and_not_tried_again_until_its_bytes_change(
    con, landing, scratch
):
    good = CRM + "\nC1,Ann,Lee,,Paris,2020-01-01,2024-01-01 10:00:00\n"
    # No header line: the first line holds a person's data, which must not reach a reason or log.
    headerless = "C2,Bea,Ray,bea.ray@example.com,Lyon,2020-01-01,2024-01-01 10:00:00\n"
    _write(landing, "crm_customers", "a_good.csv", good.encode())
    bad = _write(landing, "crm_customers", "b_bad.csv", headerless.encode())
    garbage = _write(
        landing, "crm_customers", "c_garbage.csv", (CRM + "\n").encode() + bytes(range(128, 256)) * 4
    )
    _write(landing, "crm_customers", "d_good.csv", good.replace("C1,Ann", "C4,Cat").encode())

    loads, errors = load_source(con, "crm_customers", landing, KEYS, run_id="r1", scratch_root=scratch)
    assert [e.file for e in errors] == [bad, garbage]
    assert all(isinstance(e, FileRejected) for e in errors)
    assert [l.status for l in loads] == ["loaded", "rejected", "rejected", "loaded"]
    assert [r[0] for r in _names(con)] == ["C1", "C4"]
    log = {row[0]: row for row in _log(con)}
    assert log["crm_customers/b_bad.csv"][1:3] == (
        "rejected",
        "column 'customer_ref' is missing from the header",
    )
    reason = log["crm_customers/c_garbage.csv"][2]
    assert "byte offset 68 " in reason and "GB18030" in reason and "Windows-1252" in reason
    text = " ".join(str(v) for row in _log(con) for v in row) + " ".join(str(e) for e in errors)
    assert "bea" not in text.lower() and "Lyon" not in text
    assert all(row[5] == row[6] + row[7] for row in _log(con))  # rows conserved, rejected ones 0 = 0 + 0

    again, errors = load_source(con, "crm_customers", landing, KEYS, run_id="r2", scratch_root=scratch)
    assert errors == [] and all(l.skipped for l in again) and len(_log(con)) == 4
    assert [l.status for l in again] == ["loaded", "rejected", "rejected", "loaded"]

    bad.write_bytes((CRM + "\n" + headerless).encode())  # fixed: the header is back
    fixed, errors = load_source(con, "crm_customers", landing, KEYS, run_id="r3", scratch_root=scratch)
    assert errors == [] and [(l.file, l.status) for l in fixed if not l.skipped] == [
        ("crm_customers/b_bad.csv", "loaded")
    ]
    assert [r[0] for r in _names(con)] == ["C1", "C2", "C4"]


def test_gb18030_text_broken_further_on_is_rejected_at_its_offset(con, landing, scratch):
    head = (CRM + "\nC1,伟,张,,北京,2020-01-01,2024-01-01 10:00:00\n").encode("gb18030")
    tail = b"C2,\x81 ,x,,y,2020-01-01,2024-01-01 10:00:00\n"  # a lead byte followed by a space
    _write(landing, "crm_customers", "broken.csv", head + tail)
    _, [error] = load_source(con, "crm_customers", landing, KEYS, scratch_root=scratch)
    assert f"byte offset {len(head) + 3} is not valid GB18030" in error.reason
    assert str(error).startswith(str(landing / "crm_customers" / "broken.csv"))
    assert con.execute("select count(*) from raw.crm_customers").fetchone() == (0,) and not scratch.exists()


def test_date_only_orders_load_and_same_day_orders_are_not_resubmissions(con, landing):
    _write(landing, "products", "p.csv", PRODUCTS.encode())
    orders = ORDER_HEADER + "\nO1,U1,2024-03-01,web,paid,100.00\nO2,U1,2024-03-01,web,paid,100.00\n"
    orders += "O3,U2,2024-03-01 10:00:00,web,paid,5.00\nO4,U2,2024-03-01 10:00:20,web,paid,5.00\n"
    _write(landing, "ecommerce_orders", "o.csv", orders.encode())
    for source in ("products", "ecommerce_orders"):
        assert load_source(con, source, landing, KEYS)[1] == []
    assert quarantine_duplicate_orders(con, "t") == 1  # O4 re-submits O3; O1 and O2 are two orders
    assert con.execute(
        "select order_id, ordered_at::varchar from raw.ecommerce_orders order by 1"
    ).fetchall() == [
        ("O1", "2024-03-01 00:00:00"),
        ("O2", "2024-03-01 00:00:00"),
        ("O3", "2024-03-01 10:00:00"),
    ]


def test_an_old_load_log_gains_status_and_reason(con, landing):
    con.execute("create schema raw")
    con.execute(
        "create table raw._load_log (source varchar, file varchar, checksum varchar, rows_in bigint, "
        "rows_loaded bigint, rows_quarantined bigint, extra_columns varchar, run_id varchar, loaded_at timestamp)"
    )
    con.execute(
        "insert into raw._load_log values ('products', 'products/old.csv', 'abc', 1, 1, 0, null, 'r', now())"
    )
    _write(landing, "products", "p.csv", PRODUCTS.encode())
    load_source(con, "products", landing, KEYS)
    assert con.execute("select file, status from raw._load_log order by file").fetchall() == [
        ("products/old.csv", "loaded"),
        ("products/p.csv", "loaded"),
    ]


def test_every_raw_table_exists_with_the_contract_schema_when_nothing_has_landed(con, landing):
    loads, errors = load_source(con, "web_events", landing, KEYS)
    assert (loads, errors) == ([], [])
    for source in SOURCES.values():
        columns = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = ? order by ordinal_position",
            [source.name],
        ).fetchall()
        assert columns == loader.raw_columns(source)
    assert con.execute("select count(*) from quality.quarantine").fetchone() == (0,)
