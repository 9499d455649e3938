"""Privacy at platform level, on the demo platform (``demo_home``, read-only: copied before any
change): nothing sensitive in clear, key rotation, the PII scan, roles and the audit."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidTag

from c360.privacy import crypto
from c360.privacy.access import AccessDenied, reveal
from c360.privacy.keys import Keyring, key_file_path
from c360.privacy.scan import scan
from c360.settings import Settings
from cli.privacy import keys_command


def _landing_rows(home: Path, source: str) -> list[dict]:
    rows = []
    for path in sorted((home / "landing" / source).glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _copy_home(demo_home: Path, target: Path, *, landing: bool = False) -> Path:
    """The warehouse and keys of the demo platform (and its landing zone) in a writable home."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(demo_home / "warehouse.duckdb", target / "warehouse.duckdb")
    shutil.copytree(demo_home / "keys", target / "keys")
    if landing:
        shutil.copytree(demo_home / "landing", target / "landing")
    return target


def _occurrences(path: Path, values: set[str]) -> set[str]:
    """Which values occur anywhere in the file's bytes (one pass)."""
    data = path.read_bytes()
    pattern = re.compile(b"|".join(re.escape(v.encode()) for v in sorted(values, key=len, reverse=True)))
    return {m.group(0).decode() for m in pattern.finditer(data)}


def test_national_ids_and_bank_cards_never_reach_the_warehouse_in_clear(demo_home, tmp_path):
    home = _copy_home(demo_home, tmp_path / "home")
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("checkpoint")
    crm = _landing_rows(demo_home, "crm_customers")
    values = set()
    for row in crm:
        for column in ("national_id", "bank_card"):
            value = (row.get(column) or "").strip()
            if len(value) >= 12:
                values |= {value, crypto.normalise_card(value) or value}
    assert len(values) > 100
    assert _occurrences(home / "warehouse.duckdb", values) == set()


def test_pii_scan_of_the_whole_demo_platform_finds_nothing(demo_home):
    settings = Settings(home=demo_home)
    findings = scan(settings)
    assert findings == [], "\n".join(map(str, findings))


def test_pii_scan_catches_planted_leaks_with_their_location(demo_home, tmp_path):
    home = _copy_home(demo_home, tmp_path / "home")
    (home / "reports").mkdir()
    (home / "reports" / "export.csv").write_text("customer,contact\nC1,li.na@example.com\n")
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute(
            "create table marts.leak as select 'wang.wei@example.com' as email, "
            "'+86 138-1234-5678' as phone, '6222021234567894' as card, '11010519491231002X' as national_id"
        )
    findings = scan(Settings(home=home))
    where = {
        (f.location.split(":", 1)[-1] if "warehouse" in f.location else Path(f.location).name, f.kind)
        for f in findings
    }
    assert where == {
        ("marts.leak.email", "email"),
        ("marts.leak.phone", "phone"),
        ("marts.leak.card", "card"),
        ("marts.leak.national_id", "national_id"),
        ("export.csv", "email"),
    }
    assert all("wang.wei" not in f.sample and "1234567894" not in f.sample for f in findings)


def test_keys_rotate_then_rewrap_moves_every_token_to_the_new_key(demo_home, tmp_path, monkeypatch):
    home = _copy_home(demo_home, tmp_path / "home")
    monkeypatch.setenv("C360_HOME", str(home))
    settings = Settings(home=home)
    old = Keyring.load(settings)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        before = con.execute(
            "select customer_ref, national_id_enc, bank_card_enc from raw.crm_customers "
            "where national_id_enc is not null order by customer_ref limit 20"
        ).fetchall()
    runner = CliRunner()
    assert runner.invoke(keys_command, ["rotate"]).exit_code == 0
    result = runner.invoke(keys_command, ["rewrap", "--batch-size", "50"])
    assert result.exit_code == 0, result.output
    new = Keyring.load(settings)
    assert new.active_key_id != old.active_key_id
    assert (
        f"{new.active_key_id}=" in result.output
        and f"{old.active_key_id}=" not in result.output.splitlines()[-1]
    )

    # The old key can now be retired: every token opens with the new key alone.
    retired = Keyring(new.active_key_id, {new.active_key_id: new.active_key}, new.hmac_key, "test")
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        after = {
            r[0]: r[1:]
            for r in con.execute(
                "select customer_ref, national_id_enc, bank_card_enc from raw.crm_customers"
            ).fetchall()
        }
        lines = con.execute(
            "select source, record_id, raw from quality.quarantine where starts_with(raw, 'aesgcm:')"
        ).fetchall()
    for ref, national_id, card in before:
        new_id, new_card = after[ref]
        assert crypto.token_key_id(new_id) == new.active_key_id
        assert crypto.decrypt(new_id, f"crm_customers|{ref}|national_id", retired) == crypto.decrypt(
            national_id, f"crm_customers|{ref}|national_id", old
        )
        if card:
            assert crypto.decrypt(new_card, f"crm_customers|{ref}|bank_card", retired) == crypto.decrypt(
                card, f"crm_customers|{ref}|bank_card", old
            )
    for source, record_id, raw in lines:
        crypto.decrypt(raw.removeprefix("aesgcm:"), f"{source}|{record_id}", retired)
    assert key_file_path(settings).stat().st_mode & 0o077 == 0


@pytest.fixture
def platform(demo_home, tmp_path):
    home = _copy_home(demo_home, tmp_path / "home")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    yield con, Keyring.load(Settings(home=home))
    con.close()


def _customer_with_crm_values(con) -> tuple[str, str, str]:
    return con.execute(
        "select m.customer_id, c.customer_ref, c.national_id_enc from marts.identity_map m "
        "join raw.crm_customers c on m.source = 'crm_customers' and m.source_record_id = c.customer_ref "
        "where c.national_id_enc is not null and c.email_enc is not null order by 1 limit 1"
    ).fetchone()


def test_privacy_officer_reveals_the_national_id_and_every_attempt_is_audited(platform, demo_home):
    con, keyring = platform
    customer_id, ref, _ = _customer_with_crm_values(con)
    truth = {r["customer_ref"]: r for r in _landing_rows(demo_home, "crm_customers")}
    result = reveal(
        con,
        customer_id,
        "national_id",
        role="privacy_officer",
        reason="DSAR-1",
        keyring=keyring,
        actor="alice",
    )
    assert (f"crm_customers:{ref}", truth[ref]["national_id"]) in result.values

    with pytest.raises(AccessDenied):
        reveal(
            con, customer_id, "national_id", role="analyst", reason="curious", keyring=keyring, actor="bob"
        )
    with pytest.raises(AccessDenied):
        reveal(
            con, customer_id, "bank_card", role="support_agent", reason="T-9", keyring=keyring, actor="carol"
        )
    email = reveal(
        con, customer_id, "email", role="support_agent", reason="T-9", keyring=keyring, actor="carol"
    )
    assert email.values
    audit = con.execute(
        "select actor, role, customer_id, field, reason, outcome from privacy.access_audit order by occurred_at, actor"
    ).fetchall()
    assert sorted(audit) == sorted(
        [
            ("alice", "privacy_officer", customer_id, "national_id", "DSAR-1", "revealed"),
            ("bob", "analyst", customer_id, "national_id", "curious", "denied"),
            ("carol", "support_agent", customer_id, "bank_card", "T-9", "denied"),
            ("carol", "support_agent", customer_id, "email", "T-9", "revealed"),
        ]
    )


def test_analyst_path_cannot_decrypt(platform):
    con, keyring = platform
    customer_id, ref, token = _customer_with_crm_values(con)
    columns = con.execute(
        "select table_name, column_name from information_schema.columns where table_schema = 'analytics'"
    ).fetchall()
    assert {t for t, _ in columns} >= {"customers"}
    assert not [c for _, c in columns if c.endswith(("_enc", "_hash"))]
    for table in {t for t, _ in columns}:
        cols = [c for t, c in columns if t == table]
        tokens = con.execute(
            f"select count(*) from analytics.{table} where "
            + " or ".join(
                f"regexp_matches(cast(\"{c}\" as varchar), '^(v1:|aesgcm:)|^[0-9a-f]{{64}}$')" for c in cols
            )
        ).fetchone()[0]
        assert tokens == 0, table
    assert (
        con.execute(
            "select count(*) from analytics.customers where bank_card_masked is not null "
            "and not regexp_full_match(bank_card_masked, '\\*{4} \\*{4} \\*{4} [0-9]{4}')"
        ).fetchone()[0]
        == 0
    )
    # A connection without the key sees tokens only: no decrypt function, and another key fails.
    with pytest.raises(duckdb.Error):
        con.execute("select c360_decrypt(national_id_enc, 'x') from raw.crm_customers").fetchall()
    with pytest.raises(InvalidTag):
        crypto.decrypt(token, f"crm_customers|{ref}|national_id", Keyring.generate(keyring.active_key_id))
    with pytest.raises(AccessDenied):
        reveal(con, customer_id, "national_id", role="analyst", reason="x", keyring=None)
