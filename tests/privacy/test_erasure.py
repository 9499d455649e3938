"""The right to be forgotten, end to end on a copy of the demo platform: erase a person, check
the warehouse file's bytes, load their old files again, run the whole pipeline, check again."""

from __future__ import annotations

import csv
import re
import shutil
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner

from c360.contracts import SOURCES
from c360.ingest.loader import load_file
from c360.privacy import suppression
from c360.privacy.erasure import RETRAIN_NOTICE, find_subject
from c360.privacy.keys import Keyring
from cli.privacy import erase_command
from ml import registry
from orchestration.recommendations.assets import recommender_model
from orchestration.recommendations.checks import recommender_champion_gate
from orchestration.resources import WarehouseResource


def _occurrences(path: Path, values: set[str]) -> set[str]:
    data = path.read_bytes()
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        data += wal.read_bytes()
    pattern = re.compile(b"|".join(re.escape(v.encode()) for v in sorted(values, key=len, reverse=True)))
    return {m.group(0).decode() for m in pattern.finditer(data)}


def _person_identifiers(con, customer_id: str) -> set[str]:
    """Every identifier of the person, and the masked emails no one else shares."""
    subject = find_subject(con, customer_id)
    values = {customer_id}
    for kind_values in (
        list(subject.ids.values()) + list(subject.hashes.values()) + list(subject.raw_keys.values())
    ):
        values |= kind_values
    masked = con.execute(
        "select email_masked from raw.crm_customers where customer_ref in (select unnest(?)) "
        "and email_masked is not null",
        [sorted(subject.ids.get("customer_ref", set()))],
    ).fetchall()
    for (value,) in masked:
        shared = con.execute(
            "select count(*) from raw.crm_customers where email_masked = ? and customer_ref not in (select unnest(?))",
            [value, sorted(subject.ids["customer_ref"])],
        ).fetchone()[0]
        if not shared:
            values.add(value)
    # Keys another person's record reuses (planted duplicate_key defects) are not the person's.
    collisions = {
        r[0]
        for r in con.execute(
            "select record_id from quality.quarantine where rule = 'duplicate_key'"
        ).fetchall()
    }
    return {v for v in values if v and len(v) >= 6 and v not in collisions}


def _richest_customer(con) -> str:
    """A person with records in many sources, including a CRM record and orders."""
    return con.execute(
        """
        select customer_id from marts.identity_map
        group by customer_id
        having count(*) filter (where source = 'crm_customers') > 0
           and count(*) filter (where source = 'ecommerce_orders') > 0
        order by count(distinct source) desc, count(*) desc, customer_id limit 1
        """
    ).fetchone()[0]


@pytest.fixture
def erasable(demo_home, tmp_path, monkeypatch) -> Path:
    home = tmp_path / "erasable"
    home.mkdir()
    shutil.copy2(demo_home / "warehouse.duckdb", home / "warehouse.duckdb")
    shutil.copytree(demo_home / "keys", home / "keys")
    shutil.copytree(demo_home / "landing", home / "landing")
    for var, value in {
        "C360_HOME": home,
        "C360_WAREHOUSE": home / "warehouse.duckdb",
        "DAGSTER_HOME": home / "dagster",
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
    }.items():
        monkeypatch.setenv(var, str(value))
    return home


@pytest.mark.slow
def test_erased_person_leaves_no_trace_even_after_reingest_and_full_refresh(erasable):
    warehouse = erasable / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        customer_id = _richest_customer(con)
        identifiers = _person_identifiers(con, customer_id)
        con.execute("checkpoint")
    present = _occurrences(warehouse, identifiers)
    assert len(present) >= 10 and customer_id in present  # the byte scan sees them before

    # A recommender trained while the person is still there becomes @champion; erasure must
    # reach it too (its artefacts are item-keyed, histories are read from the warehouse).
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(
            "select count(*) from intermediate.int_interactions_weighted where customer_id = ?", [customer_id]
        ).fetchone()[0]
    trained = dg.materialize(
        [recommender_model, recommender_champion_gate], resources={"warehouse": WarehouseResource()}
    )
    registry.configure()
    assert trained.success and registry.champion_info("recommender") is not None

    result = CliRunner().invoke(erase_command, ["--customer-id", customer_id, "--request-id", "REQ-1"])
    assert result.exit_code == 0, result.output
    assert RETRAIN_NOTICE in result.output
    assert _occurrences(warehouse, identifiers) == set()

    with duckdb.connect(str(warehouse)) as con:
        log = con.execute(
            "select request_id, subject_hash, rows_by_table, compacted from privacy.erasure_log"
        ).fetchall()
        assert [(r[0], r[3]) for r in log] == [("REQ-1", True)]
        assert customer_id not in str(log)
        assert con.execute("select count(*) from privacy.suppressed_pseudonyms").fetchone()[0] >= 3
        # Files stay conserved: the erased rows moved from loaded to quarantined.
        assert (
            con.execute(
                "select count(*) from raw._load_log where rows_in <> rows_loaded + rows_quarantined"
            ).fetchone()[0]
            == 0
        )
        for source in SOURCES:
            logged = con.execute(
                "select coalesce(sum(rows_loaded), 0) from raw._load_log where source = ?", [source]
            ).fetchone()[0]
            assert logged == con.execute(f"select count(*) from raw.{source}").fetchone()[0], source
        assert (
            con.execute(
                "select count(*) from quality.quarantine where rule = 'erased' and (raw is not null or record_id is not null)"
            ).fetchone()[0]
            == 0
        )
        files = con.execute(
            "select distinct source_file from quality.quarantine where rule = 'erased' and run_id like 'erasure:%'"
        ).fetchall()

    # The person's old files arrive again, re-exported (same rows, new bytes).
    assert files
    for (file,) in files:
        original = erasable / "landing" / file
        resent = original.with_name(original.stem + "_resent.csv")
        resent.write_bytes(original.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    from cli.runner import materialize

    run = materialize()
    with duckdb.connect(str(warehouse)) as con:
        con.execute("checkpoint")
        erased_on_reload = con.execute(
            "select count(*) from quality.quarantine where rule = 'erased' and run_id not like 'erasure:%'"
        ).fetchone()[0]
        assert con.execute("select count(*) from marts.customer_360").fetchone()[0] > 0
    assert erased_on_reload > 0
    assert _occurrences(warehouse, identifiers) == set(), run.failures
    # No MLflow file (store, run and model artefacts, the pre-erasure champion's included) holds them.
    assert [
        p.name for p in (erasable / "mlflow").rglob("*") if p.is_file() and _occurrences(p, identifiers)
    ] == []


def test_an_erasure_whose_rewrite_fails_says_so_and_a_compaction_completes_it(erasable, monkeypatch):
    from c360 import compaction
    from cli.maintenance import compact_command

    warehouse = erasable / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        customer_id = _richest_customer(con)
        identifiers = _person_identifiers(con, customer_id)

    class Full:  # the disk as a nearly full one reports it: no room for the rewritten copy
        free = 1024

    real_usage = compaction.shutil.disk_usage
    monkeypatch.setattr(compaction.shutil, "disk_usage", lambda _: Full)
    result = CliRunner().invoke(erase_command, ["--customer-id", customer_id, "--request-id", "REQ-2"])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "Erasure REQ-2: 1 person(s) removed from every table" in message
    assert "the warehouse file was not rewritten" in message and "Run `c360 compact`" in message
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute(
            "select count(*) from marts.identity_map where customer_id = ?", [customer_id]
        ).fetchone() == (0,)
        assert con.execute("select request_id, compacted from privacy.erasure_log").fetchall() == [
            ("REQ-2", False)
        ]
        con.execute("checkpoint")
    # What the message warns of: the values are still in the file's free blocks.
    assert _occurrences(warehouse, identifiers)

    monkeypatch.setattr(compaction.shutil, "disk_usage", real_usage)
    result = CliRunner().invoke(compact_command, [])
    assert result.exit_code == 0, result.output
    assert "completed 1 erasure(s) whose own rewrite had failed" in result.output
    assert _occurrences(warehouse, identifiers) == set()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select request_id, compacted from privacy.erasure_log").fetchall() == [
            ("REQ-2", True)
        ]


def test_ingestion_drops_rows_of_suppressed_people_and_keeps_files_conserved(tmp_path):
    keyring = Keyring.generate()
    landing = tmp_path / "landing"
    (landing / "crm_customers").mkdir(parents=True)
    path = landing / "crm_customers" / "crm.csv"
    columns = SOURCES["crm_customers"].column_names
    rows = [
        {
            "customer_ref": "CRM1",
            "email": "li.na@example.com",
            "signup_date": "2024-01-01",
            "updated_at": "2024-01-01 00:00:00",
        },
        {
            "customer_ref": "CRM2",
            "email": "wang.wei@example.com",
            "signup_date": "2024-01-01",
            "updated_at": "2024-01-01 00:00:00",
        },
        {
            "customer_ref": "CRM3",
            "email": "LI.NA@example.com ",
            "signup_date": "2024-01-01",
            "updated_at": "2024-01-01 00:00:00",
        },
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
        handle.write('CRM4,"broken\n')  # an unparseable line of CRM4
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema privacy")
    con.execute(suppression.DDL)
    from c360.privacy.crypto import pseudonym

    con.execute(
        f"insert into {suppression.TABLE} values ('email', ?, now()), ('customer_ref', ?, now())",
        [
            suppression.identifier_hash("email", pseudonym("li.na@example.com", keyring, "email"), keyring),
            suppression.identifier_hash("customer_ref", "CRM4", keyring),
        ],
    )
    load = load_file(con, "crm_customers", path, keyring, now=datetime(2026, 1, 1), landing_root=landing)
    assert (load.rows_in, load.rows_loaded, load.rows_quarantined) == (4, 1, 3)
    assert con.execute("select customer_ref from raw.crm_customers").fetchall() == [("CRM2",)]
    assert (
        con.execute("select rule, record_id, raw from quality.quarantine").fetchall()
        == [("erased", None, None)] * 3
    )
