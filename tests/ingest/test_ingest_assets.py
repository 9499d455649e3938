"""The ingest assets and their checks in Dagster, on a landing holding one source only and on a
bad file beside a good one: the run goes on, the bad file is reported, the gates say "no data"."""

import dagster as dg
import duckdb
import pytest

from c360.contracts import SOURCES
from c360.ingest.loader import raw_columns
from orchestration.ingest.assets import ingest_assets, raw_key
from orchestration.ingest.checks import ingest_checks, landing_checks
from orchestration.quality.checks import raw_gates
from orchestration.resources import WarehouseResource

ORDERS = (
    "order_id,account_id,ordered_at,channel,status,amount\n"
    "O1,U1,2024-03-01,web,paid,100.00\n"
    "O2,U1,2024-03-01,web,paid,100.00\n"
    "O3,U2,2024-03-02 09:30:00,app,delivered,42.50\n"
)


def _land(home, source: str, name: str, text: str):
    path = home / "landing" / source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _run(gates: bool = True):
    return dg.materialize(
        [*ingest_assets, *ingest_checks, *landing_checks, *(raw_gates if gates else [])],
        resources={"warehouse": WarehouseResource()},
        raise_on_error=False,
    )


def _checks(result, name: str) -> dict:
    return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations() if e.check_name == name}


def _materialization(result, source: str):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == raw_key(source)]
    return event.materialization


def test_a_landing_with_one_orders_file_loads_and_every_gate_passes(c360_home):
    _land(c360_home, "ecommerce_orders", "orders.csv", ORDERS)
    result = _run()
    assert result.success
    assert {e.asset_key for e in result.get_asset_materialization_events()} == {raw_key(s) for s in SOURCES}

    con = duckdb.connect(str(c360_home / "warehouse.duckdb"), read_only=True)
    for source in SOURCES.values():
        columns = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = ? order by ordinal_position",
            [source.name],
        ).fetchall()
        assert columns == raw_columns(source)
    assert con.execute("select count(*) from raw.ecommerce_orders").fetchone() == (3,)  # same-day orders kept
    con.close()

    gates = _checks(result, "quality_gate")
    assert set(gates) == set(SOURCES) and all(g.passed for g in gates.values())
    assert {s for s, g in gates.items() if "no_data" in g.metadata} == set(SOURCES) - {"ecommerce_orders"}
    assert "no data" in gates["products"].metadata["no_data"].value
    assert all(c.passed for c in _checks(result, "rows_conserved").values())
    assert all(c.passed for c in _checks(result, "landing_files_accepted").values())


def test_a_header_only_file_leaves_its_gate_passing_with_no_data(c360_home):
    _land(
        c360_home, "service_tickets", "tickets.csv", ",".join(SOURCES["service_tickets"].column_names) + "\n"
    )
    result = _run()
    gate = _checks(result, "quality_gate")["service_tickets"]
    assert result.success and gate.passed and "no_data" in gate.metadata


@pytest.mark.parametrize("fix", ["rewrite", "remove"])
def test_a_rejected_file_warns_without_blocking_and_waits_for_new_bytes(c360_home, fix):
    _land(c360_home, "ecommerce_orders", "a_good.csv", ORDERS)
    bad = _land(c360_home, "ecommerce_orders", "b_bad.csv", ORDERS.replace("amount", "total"))
    result = _run(gates=False)
    assert result.success
    meta = _materialization(result, "ecommerce_orders").metadata
    assert meta["files_rejected"].value == 1 and meta["dagster/row_count"].value == 3
    assert meta["rejected_files"].value == [
        "ecommerce_orders/b_bad.csv: column 'amount' is missing from the header"
    ]
    accepted = _checks(result, "landing_files_accepted")
    assert not accepted["ecommerce_orders"].passed
    assert accepted["ecommerce_orders"].severity == dg.AssetCheckSeverity.WARN
    assert accepted["ecommerce_orders"].metadata["rejected_in_this_run"].value == 1
    assert accepted["ecommerce_orders"].metadata["rejected_files"].value == meta["rejected_files"].value
    assert all(c.passed for s, c in accepted.items() if s != "ecommerce_orders")

    again = _run(gates=False)  # same bytes: not tried again, still waiting in landing
    assert again.success and _materialization(again, "ecommerce_orders").metadata["files_rejected"].value == 0
    still = _checks(again, "landing_files_accepted")["ecommerce_orders"]
    assert not still.passed and still.metadata["rejected_in_this_run"].value == 0

    if fix == "rewrite":
        bad.write_text(ORDERS.replace("O1,", "O4,").replace("O2,", "O5,").replace("O3,", "O6,"))
    else:
        bad.unlink()
    fixed = _run(gates=False)
    assert _checks(fixed, "landing_files_accepted")["ecommerce_orders"].passed
    con = duckdb.connect(str(c360_home / "warehouse.duckdb"), read_only=True)
    statuses = con.execute(
        "select status from raw._load_log where file = 'ecommerce_orders/b_bad.csv' order by rowid"
    )
    expected = [("rejected",), ("loaded",)] if fix == "rewrite" else [("rejected",)]
    assert statuses.fetchall() == expected
    con.close()
