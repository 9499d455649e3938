from __future__ import annotations

import json
import random
import sqlite3
import uuid

import duckdb
import pytest
from click.testing import CliRunner
from pii_fakes import luhn_card, mobile, prc_id

from c360.privacy.crypto import encrypt_column, mask_card, mask_email, mask_phone, pseudonym
from c360.privacy.scan import Finding, scan, scan_file
from c360.settings import get_settings
from cli.privacy import scan_pii_command

EMAIL, PHONE = "wang.wei@example.com", "+86 138-1234-5678"
NATIONAL_ID, CARD = "11010519491231002X", "6222021234567894"


def _protected_rows(keyring, n=500):
    """Rows as ingestion leaves them: pseudonyms, tokens, masks, ids, timestamps and floats."""
    rng = random.Random(3)
    rows = []
    for i in range(n):
        email, phone = f"user{i}@example.com", mobile(rng)
        rows.append(
            {
                "customer_ref": f"CRM{i:07d}",
                "order_id": f"{rng.randint(10**15, 10**16 - 1)}",
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "loyalty_card": f"LC{i:08d}",
                "email_hash": pseudonym(email, keyring, "email"),
                "phone_hash": pseudonym(phone, keyring, "phone"),
                "email_masked": mask_email(email),
                "phone_masked": mask_phone(phone),
                "card_masked": mask_card(luhn_card(rng)),
                "occurred_at": f"2024-06-{1 + i % 28:02d} 13:45:{i % 60:02d}.123456",
                "epoch_ms": str(1718000000000 + i * 7919),
                "score": repr(rng.random()),
                "note": f"order {i} shipped to SH-{rng.randint(100000, 999999)}",
            }
        )
    tokens = encrypt_column([prc_id(rng) for _ in rows], [r["customer_ref"] for r in rows], keyring)
    cards = encrypt_column([luhn_card(rng) for _ in rows], [r["customer_ref"] for r in rows], keyring)
    for row, token, card in zip(rows, tokens.to_pylist(), cards.to_pylist(), strict=True):
        row["national_id"], row["bank_card"] = token, card
    return rows


def _write_warehouse(path, rows):
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.customers as select * from (select unnest(?::json[]) as j), "
            "lateral (select unnest(json_transform(j, ?))) ",
            [[json.dumps(r) for r in rows], json.dumps({k: "VARCHAR" for k in rows[0]})],
        )
        con.execute("alter table marts.customers drop column j")


@pytest.fixture
def clean_home(isolated_home, keyring):
    settings = get_settings()
    rows = _protected_rows(keyring)
    _write_warehouse(settings.warehouse, rows)
    settings.reports.mkdir(parents=True)
    (settings.reports / "rfm.json").write_text(json.dumps(rows[:50], indent=1))
    (settings.reports / "rfm.html").write_text(
        "<img src='logo@2x.png'> <a href='git@github.com:org/repo.git'>x</a>"
    )
    mlflow = settings.mlflow_dir
    mlflow.mkdir(parents=True)
    with sqlite3.connect(mlflow / "mlflow.db") as db:
        db.execute("create table tags (key text, value text, ts integer, blob_col blob)")
        db.executemany(
            "insert into tags values (?, ?, ?, ?)",
            [(k, v, 1718000000000, json.dumps(rows[0]).encode()) for k, v in rows[1].items()],
        )
    landing = settings.landing / "crm_customers"
    landing.mkdir(parents=True)
    (landing / "raw.csv").write_text(f"email,phone\n{EMAIL},{PHONE}\n")  # plaintext by design, not scanned
    return settings


def test_scanner_is_clean_on_pseudonymised_encrypted_and_masked_data(clean_home):
    assert scan(clean_home) == []


def test_scanner_finds_planted_pii_in_a_warehouse_table_and_names_the_column(clean_home):
    with duckdb.connect(str(clean_home.warehouse)) as con:
        con.execute("create table main.leak (id integer, contact varchar, free_text varchar, amount bigint)")
        con.execute(
            "insert into leak values (1, ?, ?, 13812345678), (2, ?, 'card ' || ?, 1), (3, null, 'id ' || ?, 2)",
            [EMAIL, f"call me on {PHONE}", " John.Doe@Example.COM ", CARD, NATIONAL_ID],
        )
    findings = {(f.location.split(":", 1)[1], f.kind): f for f in scan(clean_home, files=False)}
    assert set(findings) == {
        ("main.leak.contact", "email"),
        ("main.leak.free_text", "phone"),
        ("main.leak.free_text", "card"),
        ("main.leak.free_text", "national_id"),
        ("main.leak.amount", "phone"),
    }
    assert findings[("main.leak.contact", "email")].count == 2
    assert findings[("main.leak.free_text", "card")].sample == "**** **** **** 7894"
    assert findings[("main.leak.free_text", "national_id")].sample == "**************002X"
    assert findings[("main.leak.free_text", "phone")].sample == "*******5678"


def test_scanner_rejects_numbers_failing_their_check_digit(clean_home):
    with duckdb.connect(str(clean_home.warehouse)) as con:
        con.execute(
            "create table near_misses as select * from (values ('6222021234567895'), ('110105194912310021'), "
            "('12345678901'), ('0.13812345678'), ('LC13812345678'), ('j***@example.com')) v(x)"
        )
    assert scan(clean_home, files=False) == []


def test_a_column_of_real_card_numbers_is_reported_but_a_column_of_numeric_ids_is_not(clean_home):
    rng = random.Random(5)
    with duckdb.connect(str(clean_home.warehouse)) as con:
        con.execute(
            "create table cards as select unnest(?::varchar[]) as card_number, unnest(?::varchar[]) as order_no",
            [
                [luhn_card(rng) for _ in range(300)],
                [str(rng.randint(10**15, 10**16 - 1)) for _ in range(300)],
            ],
        )
    findings = scan(clean_home, files=False)
    assert [(f.location.split(":", 1)[1], f.kind, f.count) for f in findings] == [
        ("main.cards.card_number", "card", 300)
    ]


def test_scanner_finds_pii_in_files_and_sqlite_event_logs(clean_home):
    runs = clean_home.dagster_home / "history" / "runs"
    runs.mkdir(parents=True)
    with sqlite3.connect(runs / "1234.db") as db:
        db.execute("create table event_logs (id integer, event text, payload blob)")
        db.execute(
            "insert into event_logs values (1, ?, ?)",
            [json.dumps({"message": f"loaded {NATIONAL_ID}"}), f"mailto:{EMAIL}".encode()],
        )
    gx = clean_home.home / "gx" / "validations"
    gx.mkdir(parents=True)
    (gx / "result.json").write_text(json.dumps({"unexpected_list": [CARD, "6222 0212 3456 7894"]}))
    (gx / "index.html").write_text(f"<a href='mailto:wang.wei%40example.com'>x</a> tel {PHONE}")

    findings = scan(clean_home, warehouse=False)
    by_kind = {(f.location, f.kind): f for f in findings}
    event_db = str((runs / "1234.db").resolve())
    assert set(by_kind) == {
        (f"{event_db}:event_logs.event", "national_id"),
        (f"{event_db}:event_logs.payload", "email"),
        (str((gx / "result.json").resolve()), "card"),
        (str((gx / "index.html").resolve()), "email"),
        (str((gx / "index.html").resolve()), "phone"),
    }
    assert by_kind[(str((gx / "result.json").resolve()), "card")].count == 2
    assert by_kind[(f"{event_db}:event_logs.payload", "email")].sample == "w***@example.com"


def test_scanner_reads_parquet_through_duckdb(tmp_path):
    path = tmp_path / "scores.parquet"
    with duckdb.connect() as con:
        con.execute(f"copy (select 'x' as a, '{EMAIL}' as b) to '{path}' (format parquet)")
    assert [(f.location, f.kind) for f in scan_file(path)] == [(f"{path}.b", "email")]


def test_scan_pii_command_exits_non_zero_and_never_prints_plaintext(clean_home):
    (clean_home.reports / "leak.txt").write_text(f"{EMAIL} {PHONE} {NATIONAL_ID} {CARD}")
    result = CliRunner().invoke(scan_pii_command, [])
    assert result.exit_code == 1
    assert "leak.txt" in result.output
    for secret in (EMAIL, "1234-5678", NATIONAL_ID, CARD, "wang.wei"):
        assert secret not in result.output


def test_scan_pii_command_exits_zero_when_clean(clean_home):
    result = CliRunner().invoke(scan_pii_command, [])
    assert result.exit_code == 0, result.output
    assert "No plaintext PII found" in result.output


def test_finding_prints_location_kind_count_and_masked_sample():
    assert (
        str(Finding("w.duckdb:main.t.c", "email", 3, "j***@example.com"))
        == "w.duckdb:main.t.c: 3 email (e.g. j***@example.com)"
    )
