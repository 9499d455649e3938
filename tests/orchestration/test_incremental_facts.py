"""The large fact models are dbt-incremental: a run after new files landed reads only what was
loaded since and gives exactly the tables a full rebuild gives (no missing, stale or duplicate
rows), and a run with nothing new changes nothing."""

import shutil

import duckdb
import pytest

# The incremental facts and the unique key of their rows.
FACTS = {
    "int_device_sessions_sessionised": "session_id",
    "int_purchases_recorded": "purchase_id",
    "int_device_products_touched": "device_id || '|' || product_id",
    "int_device_visits_summarised": "device_id || '|' || session_id || '|' || coalesce(account_id, '')",
    "int_identity_records_unioned": "record_node",
}
# Columns compared: a record's number is its own (a full rebuild numbers afresh) and built_at
# says when it was built, not what it holds.
COMPARED = {model: "* exclude (built_at)" for model in FACTS} | {
    "int_identity_records_unioned": "* exclude (record_id, built_at)"
}
SELECT = " ".join(FACTS)
# The raw sources they read, each with its newest landing file held back for the increment.
HELD_SOURCES = ("web_events", "pos_transactions", "ecommerce_orders")


def snapshot(con, suffix: str) -> dict[str, int]:
    """Copy each fact table aside; return their row counts."""
    counts = {}
    for model in FACTS:
        columns = COMPARED.get(model, "*")
        con.execute(
            f"create or replace table scratch.{model}_{suffix} as select {columns} from intermediate.{model}"
        )
        counts[model] = con.execute(f"select count(*) from scratch.{model}_{suffix}").fetchall()[0][0]
    return counts


def differences(con, model: str, left: str, right: str) -> int:
    return con.execute(
        f"""select count(*) from (
            (select * from scratch.{model}_{left} except all select * from scratch.{model}_{right})
            union all
            (select * from scratch.{model}_{right} except all select * from scratch.{model}_{left})
        )"""
    ).fetchall()[0][0]


@pytest.fixture
def warehouse(demo_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(demo_home / "warehouse.duckdb", home / "warehouse.duckdb")
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    return home / "warehouse.duckdb"


def test_an_increment_gives_what_a_full_rebuild_gives(warehouse, tmp_path, dbt_run):
    target = tmp_path / "target"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema scratch")
    # The warehouse as it was before each source's newest file arrived.
    held = {}
    for source in HELD_SOURCES:
        newest = con.execute(f"select max(_source_file) from raw.{source}").fetchall()[0][0]
        con.execute(
            f"create table scratch.held_{source} as select * from raw.{source} where _source_file = ?",
            [newest],
        )
        held[source] = con.execute(f"delete from raw.{source} where _source_file = ?", [newest]).fetchall()[
            0
        ][0]
        assert held[source] > 0
    con.close()
    dbt_run(target, SELECT, "--full-refresh")

    # The files arrive: their rows are loaded now, after the last build.
    con = duckdb.connect(str(warehouse))
    before = snapshot(con, "before")
    for source in HELD_SOURCES:
        con.execute(
            f"insert into raw.{source} by name "
            f"select * replace (now()::timestamp as _loaded_at) from scratch.held_{source}"
        )
    con.close()
    dbt_run(target, SELECT)

    con = duckdb.connect(str(warehouse))
    incremental = snapshot(con, "incremental")
    # The records the increment rebuilt: the new orders, the receipts and devices with a new row.
    rebuilt, records = con.execute(
        "select count(*) filter (where built_at = (select max(built_at) from intermediate.int_identity_records_unioned)), "
        "count(*) from intermediate.int_identity_records_unioned"
    ).fetchone()
    con.close()
    assert 0 < rebuilt < records / 4
    dbt_run(target, SELECT)  # nothing new since: changes nothing
    con = duckdb.connect(str(warehouse))
    again = snapshot(con, "again")
    con.close()
    dbt_run(target, SELECT, "--full-refresh")

    con = duckdb.connect(str(warehouse))
    full = snapshot(con, "full")
    for model, key in FACTS.items():
        assert incremental[model] > before[model], f"{model}: the increment added nothing"
        assert incremental[model] == full[model] == again[model]
        assert (
            con.execute(
                f"select count(*) - count(distinct {key}) from scratch.{model}_incremental"
            ).fetchall()[0][0]
            == 0
        )
        assert differences(con, model, "incremental", "full") == 0, f"{model} differs from a full rebuild"
        assert differences(con, model, "incremental", "again") == 0, f"{model} changed with nothing new"
    con.close()
