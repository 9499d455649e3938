"""A run holds the warehouse (c360.warehouse.held): its steps' connections are cursors of one DuckDB
instance kept open between them, let go before dbt opens the file and when the run ends."""

import subprocess
import sys

import duckdb

from c360 import warehouse


def _other_process_can_read(path) -> bool:
    code = f"import duckdb; duckdb.connect({str(path)!r}, read_only=True).close()"
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True).returncode == 0


def test_connections_share_one_instance_while_held_and_it_closes_at_the_end(warehouse_file):
    with warehouse.held(warehouse_file):
        writer = warehouse.connect()
        writer.execute("create table raw.t as select 1 as x")
        writer.close()
        # A read-only request too: the held instance is the file's one writer, and a second
        # instance in this process would be refused ("a different configuration").
        reader = warehouse.connect(read_only=True)
        assert reader.execute("select x from raw.t").fetchall() == [(1,)]
        reader.close()
        # Closing the cursors left the instance open: the file is still this process's.
        assert warehouse._hold.con is not None
        assert not _other_process_can_read(warehouse_file)
    assert warehouse._hold.con is None
    assert _other_process_can_read(warehouse_file)
    # What the steps wrote was checkpointed into the file.
    with duckdb.connect(str(warehouse_file), read_only=True) as con:
        assert con.execute("select x from raw.t").fetchall() == [(1,)]


def test_let_go_closes_the_instance_and_the_next_connection_opens_it_again(warehouse_file):
    with warehouse.held(warehouse_file):
        warehouse.connect().close()
        assert warehouse.let_go()
        # dbt (another instance in this process, with its own settings) can now open the file.
        with duckdb.connect(str(warehouse_file), config={"threads": "1"}) as dbt:
            dbt.execute("create table main.by_dbt as select 2 as y")
        con = warehouse.connect(read_only=True)
        assert con.execute("select y from main.by_dbt").fetchall() == [(2,)]
        con.close()
        assert not warehouse.let_go(if_caching_over=warehouse.HELD_MEMORY_CAP)  # caches little
        assert warehouse.let_go(if_caching_over=0)


def test_another_warehouse_file_is_opened_as_before(warehouse_file, tmp_path):
    other = tmp_path / "other.duckdb"
    with warehouse.held(warehouse_file):
        con = warehouse.connect(other)
        con.close()
        assert warehouse._hold.con is None
        # Its connection was its own: the file is free again.
        assert _other_process_can_read(other)


def test_without_a_hold_every_connection_is_its_own(warehouse_file):
    con = warehouse.connect()
    con.close()
    assert warehouse._hold.con is None
    assert _other_process_can_read(warehouse_file)


def test_closing_the_last_connection_lets_a_big_cache_go_but_never_under_another(warehouse_file, monkeypatch):
    """A step that reads a big table and then works on the arrays must not hold DuckDB's cache of
    it as well; a connection still in use keeps the instance (closing it would close them all)."""
    monkeypatch.setattr(warehouse, "HELD_MEMORY_CAP", 2**20)
    with warehouse.held(warehouse_file):
        outer = warehouse.connect()
        # ~9 MiB of blocks in DuckDB's buffer pool (md5 strings hardly compress).
        outer.execute(
            "create table raw.big as select range as x, md5(range::varchar) as y from range(500000)"
        )
        inner = warehouse.connect(read_only=True)
        assert inner.execute("select count(distinct y) from raw.big").fetchone() == (500000,)
        warehouse.close(inner)
        assert warehouse._hold.con is not None
        assert outer.execute("select count(*) from raw.big").fetchone() == (500000,)  # still usable
        warehouse.close(outer)
        assert warehouse._hold.con is None
        small = warehouse.connect()
        small.execute("create table raw.small as select 1 as x")
        warehouse.close(small)
        assert warehouse._hold.con is not None  # caching little: kept


def test_closing_a_connection_to_another_file_never_lets_the_held_one_go(
    warehouse_file, tmp_path, monkeypatch
):
    monkeypatch.setattr(warehouse, "HELD_MEMORY_CAP", 0)
    with warehouse.held(warehouse_file):
        held = warehouse.connect()
        held.execute("create table raw.t as select md5(range::varchar) as y from range(100000)")
        other = warehouse.connect(tmp_path / "other.duckdb")
        warehouse.close(other)
        assert held.execute("select 1").fetchone() == (1,)  # still open
        warehouse.close(held)
        assert warehouse._hold.con is None  # its own last close did (cap 0)
