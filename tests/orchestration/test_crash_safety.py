"""SIGKILL in the middle of a warehouse write leaves the warehouse as before or as after, never
half-written, and the next run recovers on its own.

Two writers are killed at several points against copies of the demo warehouse: dbt rebuilding
``marts.customer_360`` (the step ``c360 run --select key:marts/customer_360`` runs; dbt-duckdb
builds into ``__dbt_tmp`` and renames inside one transaction) and the loader taking two new
clickstream files (one transaction per batch of files). After each kill the file must open, the whole
warehouse must match one of the states an uninterrupted run passes through, and a rerun must give
what an uninterrupted run gives.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from c360.settings import DBT_PROJECT_DIR

# Kill points, as fractions of how long an uninterrupted run writes after its marker line (so
# they land in the middle however loaded the machine is), plus right at the marker.
KILL_FRACTIONS = (0.0, 0.5, 0.9)
MODEL_MARKER = "START sql table model"
LEFTOVER_SUFFIXES = ("__dbt_tmp", "__dbt_backup")
LOADER_RUN_ID = "crash-test"
LOADER_NOW = "2030-01-01 00:00:00"

LOADER_SCRIPT = f"""
import sys
from datetime import datetime
from pathlib import Path
from c360.ingest.loader import load_source
from c360.privacy.keys import Keyring
from c360.settings import get_settings
from c360.warehouse import connect

settings = get_settings()
con = connect()
print("connected", flush=True)
loads, errors = load_source(con, "web_events", settings.landing, Keyring.load(settings),
                            run_id="{LOADER_RUN_ID}", now=datetime.fromisoformat("{LOADER_NOW}"))
con.close()
assert not errors, errors
print("done", [l.rows_loaded for l in loads], flush=True)
"""


def warehouse_state(path: Path) -> dict[str, tuple[int, int]]:
    """(rows, order-independent content hash) of every base table, leftovers of dbt excluded."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
        ).fetchall()
        state = {}
        for schema, table in tables:
            if table.endswith(LEFTOVER_SUFFIXES):
                continue
            rows, digest = con.execute(
                f'select count(*), coalesce(sum(hash(t)::hugeint), 0) from "{schema}"."{table}" t'
            ).fetchone()
            state[f"{schema}.{table}"] = (rows, int(digest))
        return state
    finally:
        con.close()


def _diff(state: dict, *expected: dict) -> list[list[str]]:
    """Tables that differ from each expected state."""
    return [sorted(k for k in state.keys() | e.keys() if state.get(k) != e.get(k)) for e in expected]


def leftovers(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [
            r[0]
            for r in con.execute("select table_name from information_schema.tables").fetchall()
            if r[0].endswith(LEFTOVER_SUFFIXES)
        ]
    finally:
        con.close()


def run_and_kill(cmd: list[str], env: dict, marker: str, delay: float | None, timeout: float = 240):
    """Start ``cmd``; ``delay`` seconds after it prints ``marker`` (it is writing the warehouse
    by then), SIGKILL its whole process group. ``delay=None``: let it finish and return the
    seconds from the marker to its exit. Otherwise returns how it ended."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    output = []
    deadline = time.monotonic() + timeout
    marked = None
    try:
        for line in proc.stdout:
            output.append(line)
            if marked is None and marker in line:
                marked = time.monotonic()
            if delay is not None and marker in line:
                time.sleep(delay)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return "killed"
                return "finished before the kill"
            if time.monotonic() > deadline:
                raise TimeoutError("".join(output[-20:]))
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, "".join(output[-30:])
    assert marked is not None, f"never printed {marker!r}"
    return time.monotonic() - marked


@pytest.fixture
def warehouse_copy(demo_home, tmp_path):
    def copy(name: str) -> Path:
        target = tmp_path / name / "warehouse.duckdb"
        target.parent.mkdir()
        shutil.copy(demo_home / "warehouse.duckdb", target)
        return target

    return copy


def _dbt_env(warehouse: Path, tmp_path: Path) -> tuple[list[str], dict]:
    target = tmp_path / "dbt_target"
    if not target.exists():
        target.mkdir()
        parsed = DBT_PROJECT_DIR / "target" / "partial_parse.msgpack"
        if parsed.exists():
            shutil.copy(parsed, target / "partial_parse.msgpack")
    env = os.environ | {
        "C360_WAREHOUSE": str(warehouse),
        "C360_HOME": str(warehouse.parent),
        "C360_DUCKDB_THREADS": "1",
    }
    cmd = [
        str(Path(sys.executable).parent / "dbt"),
        "run",
        "--select",
        "path:models/marts/customer_360.sql",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target),
        "--log-path",
        str(tmp_path / "dbt_logs"),
    ]
    return cmd, env


def _change_inputs(warehouse: Path) -> None:
    """A new CRM extract: every region upper-cased, so the rebuilt customer_360 differs."""
    con = duckdb.connect(str(warehouse))
    con.execute("update raw.crm_customers set region = upper(region) || ' (new)'")
    con.close()


def test_killing_the_customer_360_build_leaves_before_or_after(warehouse_copy, tmp_path):
    reference = warehouse_copy("reference")
    _change_inputs(reference)
    before = warehouse_state(reference)
    cmd, env = _dbt_env(reference, tmp_path)
    writing = run_and_kill(cmd, env, MODEL_MARKER, None)
    after = warehouse_state(reference)
    assert before["marts.customer_360"] != after["marts.customer_360"]

    crashed = warehouse_copy("crashed")
    _change_inputs(crashed)
    cmd, env = _dbt_env(crashed, tmp_path)
    outcomes = []
    for delay in (f * writing for f in KILL_FRACTIONS):
        outcomes.append(run_and_kill(cmd, env, MODEL_MARKER, delay))
        state = warehouse_state(crashed)  # (a) the file opens after the kill
        assert state in (before, after), (  # (b)
            f"half-written warehouse after a kill {delay}s into the build: {_diff(state, before, after)}"
        )
        outcomes.append("before" if state == before else "after")

    run_and_kill(cmd, env, MODEL_MARKER, None)  # (c) no manual step
    assert warehouse_state(crashed) == after
    assert leftovers(crashed) == []
    print(f"customer_360 kills (build writes for {writing:.1f}s):", outcomes)


def _new_clickstream_files(source_warehouse: Path, landing: Path) -> None:
    """Two new web_events files: the demo's events under new ids, one day later."""
    folder = landing / "web_events"
    folder.mkdir(parents=True)
    con = duckdb.connect(str(source_warehouse), read_only=True)
    for part in (0, 1):
        con.execute(
            f"""
            copy (
                select 'X{part}-' || event_id as event_id,
                       strftime(occurred_at + interval 1 day, '%Y-%m-%d %H:%M:%S') as occurred_at,
                       session_id, device_id, user_id, event_type, product_id, search_query, channel, order_id
                from raw.web_events where hash(event_id) % 2 = {part}
            ) to '{folder / f"events_new_{part}.csv"}' (header, delimiter ',')
            """
        )
    con.close()


def test_killing_an_incremental_load_leaves_whole_files_only(demo_home, warehouse_copy, tmp_path):
    landing = tmp_path / "landing"
    _new_clickstream_files(demo_home / "warehouse.duckdb", landing)
    keys_env = {"C360_KEYS_DIR": str(demo_home / "keys")}

    def env_for(warehouse: Path) -> dict:
        return (
            os.environ
            | keys_env
            | {
                "C360_WAREHOUSE": str(warehouse),
                "C360_LANDING": str(landing),
                "C360_HOME": str(warehouse.parent),
            }
        )

    cmd = [sys.executable, "-c", LOADER_SCRIPT]
    # The states an uninterrupted load passes through: before, after the first file, after both.
    reference = warehouse_copy("reference")
    states = [warehouse_state(reference)]
    partial = warehouse_copy("partial")
    (tmp_path / "first_landing" / "web_events").mkdir(parents=True)
    shutil.copy(landing / "web_events" / "events_new_0.csv", tmp_path / "first_landing" / "web_events")
    run_and_kill(cmd, env_for(partial) | {"C360_LANDING": str(tmp_path / "first_landing")}, "connected", None)
    states.append(warehouse_state(partial))
    writing = run_and_kill(cmd, env_for(reference), "connected", None)
    states.append(warehouse_state(reference))
    assert len({str(s) for s in states}) == 3

    crashed = warehouse_copy("crashed")
    outcomes = []
    for delay in (f * writing for f in KILL_FRACTIONS):
        outcomes.append(run_and_kill(cmd, env_for(crashed), "connected", delay))
        state = warehouse_state(crashed)
        assert state in states, f"half-loaded file after a kill {delay}s into the load"
        outcomes.append(["before", "first file", "both files"][states.index(state)])
        con = duckdb.connect(str(crashed), read_only=True)
        logged, in_raw = con.execute(
            "select (select coalesce(sum(rows_loaded), 0) from raw._load_log where source = 'web_events'), "
            "(select count(*) from raw.web_events)"
        ).fetchone()
        con.close()
        assert logged == in_raw

    run_and_kill(cmd, env_for(crashed), "connected", None)
    assert warehouse_state(crashed) == states[-1]
    print(f"loader kills (load writes for {writing:.1f}s):", outcomes)
