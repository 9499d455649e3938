"""Writers wait for readers: any open DuckDB connection in another process blocks a writer, so
c360.warehouse.connect retries a writer's lock conflict for C360_WRITER_LOCK_WAIT_S seconds."""

import subprocess
import sys

import duckdb
import pytest

from c360.warehouse import connect


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


@pytest.fixture
def warehouse_file(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    return path


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
