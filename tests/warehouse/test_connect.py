"""Writers wait for readers: any open DuckDB connection in another process blocks a writer, so
c360.warehouse.connect retries a writer's lock conflict for C360_WRITER_LOCK_WAIT_S seconds."""

import subprocess
import sys

import duckdb
import pytest

from c360.settings import DEFAULT_DUCKDB_MEMORY_LIMIT
from c360.warehouse import connect, memory_limit_bytes, memory_share, parse_size


def _reader(path, seconds: float) -> subprocess.Popen:
    # Another process holding a read-only connection (as the insights app or a poller would).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only=True); "
                f"print('ok', flush=True); time.sleep({seconds})"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ok"
    return holder


def test_a_writer_waits_for_a_reader_to_let_go(warehouse_file, monkeypatch):
    monkeypatch.setenv("C360_WRITER_LOCK_WAIT_S", "60")
    holder = _reader(warehouse_file, 3)
    try:
        con = connect(warehouse_file)  # would raise at once without the wait
        con.execute("create table t as select 1 as x")
        assert con.execute("select x from t").fetchall() == [(1,)]
        con.close()
        assert holder.poll() is not None, "the writer got in while the reader still held the file"
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_writer_gives_up_after_the_wait_and_says_why(warehouse_file, monkeypatch):
    monkeypatch.setenv("C360_WRITER_LOCK_WAIT_S", "0.5")
    holder = _reader(warehouse_file, 60)
    try:
        with pytest.raises(duckdb.IOException, match="lock"):
            connect(warehouse_file)
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_connections_get_the_default_memory_limit_unless_one_is_set(warehouse_file, monkeypatch):
    monkeypatch.delenv("C360_DUCKDB_MEMORY_LIMIT", raising=False)
    con = connect(warehouse_file, read_only=True)
    try:
        # DuckDB's own default would be 80% of the machine's RAM.
        # DuckDB shows it to a tenth of a GiB.
        assert memory_limit_bytes(con) == pytest.approx(
            parse_size(DEFAULT_DUCKDB_MEMORY_LIMIT), abs=0.1 * 2**30
        )
    finally:
        con.close()
    monkeypatch.setenv("C360_DUCKDB_MEMORY_LIMIT", "1536MiB")
    con = connect(warehouse_file, read_only=True)
    try:
        assert memory_limit_bytes(con) == 1.5 * 2**30
    finally:
        con.close()


def test_a_memory_share_lowers_the_limit_for_its_block_and_restores_it(warehouse_file, monkeypatch):
    monkeypatch.setenv("C360_DUCKDB_MEMORY_LIMIT", "2GiB")
    con = connect(warehouse_file, read_only=True)
    try:
        before = memory_limit_bytes(con)
        with memory_share(con, 0.5):
            assert memory_limit_bytes(con) == before / 2
        assert memory_limit_bytes(con) == before
        with pytest.raises(RuntimeError), memory_share(con, 0.25):
            raise RuntimeError("a failing read")
        assert memory_limit_bytes(con) == before == 2**31
    finally:
        con.close()
