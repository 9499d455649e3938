"""The warehouse's compaction (c360/compaction.py): the rewrite gives back the space rewrites
leave, keeps every row and view, and leaves the file untouched when it cannot be done safely."""

import hashlib
import subprocess
import sys

import duckdb
import pytest

from c360 import compaction, warehouse
from c360.compaction import CompactionError, compact


def _grown(path) -> None:
    """A table rewritten in fifths, as the daily runs' delete + insert do: the file grows."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        con.execute("create table marts.t as select range as id, md5(range::varchar) as s from range(400000)")
        con.execute("create view marts.v as select count(*) as n, sum(id) as total from marts.t")
        con.execute("checkpoint")
        for part in range(5):
            con.execute(f"delete from marts.t where id % 5 = {part}")
            con.execute(
                "insert into marts.t select range, md5(range::varchar) from range(400000) "
                f"where range % 5 = {part}"
            )
            con.execute("checkpoint")


def _content(path):
    with duckdb.connect(str(path), read_only=True) as con:
        return (
            con.execute("select count(*), sum(hash(id, s)) from marts.t").fetchone(),
            con.execute("select * from marts.v").fetchone(),
        )


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_compaction_gives_back_the_space_and_keeps_every_row_and_view(warehouse_file):
    _grown(warehouse_file)
    before = _content(warehouse_file)
    result = compact(warehouse_file)
    assert result.bytes_before > result.bytes_after == warehouse_file.stat().st_size
    assert result.reclaimed_bytes > 0.2 * result.bytes_before
    assert result.rows >= 400000 and result.views >= 1
    assert _content(warehouse_file) == before == ((400000, before[0][1]), (400000, sum(range(400000))))
    # Nothing is left beside the warehouse: no copy, no write-ahead log.
    assert sorted(p.name for p in warehouse_file.parent.iterdir()) == ["warehouse.duckdb"]


def test_a_run_holding_the_warehouse_lets_it_go_and_reads_the_compacted_file(warehouse_file):
    _grown(warehouse_file)
    with warehouse.held(warehouse_file):
        con = warehouse.connect()
        con.execute("create table raw.written_in_the_run as select 42 as x")
        con.close()
        result = compact(warehouse_file)
        con = warehouse.connect(read_only=True)
        assert con.execute("select x from raw.written_in_the_run").fetchall() == [(42,)]
        assert con.execute("select count(*) from marts.t").fetchone() == (400000,)
        con.close()
        # What the run writes after the compaction lands in the new file, not in the old one
        # that the swap unlinked.
        con = warehouse.connect()
        con.execute("create table raw.written_after as select 7 as y")
        con.close()
    assert result.reclaimed_bytes > 0
    with duckdb.connect(str(warehouse_file), read_only=True) as con:
        assert con.execute("select y from raw.written_after").fetchall() == [(7,)]


def test_another_process_holding_the_file_stops_it_and_leaves_the_file_as_it_was(warehouse_file, monkeypatch):
    _grown(warehouse_file)
    digest = _digest(warehouse_file)
    monkeypatch.setenv("C360_WRITER_LOCK_WAIT_S", "0.5")
    code = (
        f"import duckdb, time; c = duckdb.connect({str(warehouse_file)!r}); "
        "print('open', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(CompactionError, match="open in another process"):
            compact(warehouse_file)
    finally:
        holder.kill()
        holder.wait()
    assert _digest(warehouse_file) == digest
    assert not warehouse_file.with_name("warehouse.duckdb.compact").exists()


def test_too_little_disk_for_the_copy_stops_it_before_writing(warehouse_file, monkeypatch):
    _grown(warehouse_file)
    before = _content(warehouse_file)

    class Usage:  # the disk as a nearly full one reports it
        free = 1024

    monkeypatch.setattr(compaction.shutil, "disk_usage", lambda _: Usage)
    with pytest.raises(CompactionError, match=r"needs [\d,]+ MiB free on that disk and has 0 MiB"):
        compact(warehouse_file)
    assert _content(warehouse_file) == before
    assert not warehouse_file.with_name("warehouse.duckdb.compact").exists()


def test_a_copy_that_differs_is_thrown_away_and_the_warehouse_kept(warehouse_file, monkeypatch):
    _grown(warehouse_file)
    before = _content(warehouse_file)
    real = compaction.inventory

    def short_copy(con, catalog):  # the copy as if a table had come out short and a view lost
        rows, views = real(con, catalog)
        if catalog == compaction._COPY:
            rows = {**rows, "marts.t": rows["marts.t"] - 1}
            views = views - {"marts.v"}
        return rows, views

    monkeypatch.setattr(compaction, "inventory", short_copy)
    with pytest.raises(CompactionError) as raised:
        compact(warehouse_file)
    assert "table marts.t: 400000 rows, the copy 399999" in str(raised.value)
    assert "view marts.v: missing from the copy" in str(raised.value)
    assert _content(warehouse_file) == before
    assert not warehouse_file.with_name("warehouse.duckdb.compact").exists()


def test_differences_name_what_the_copy_lacks_or_adds():
    original = ({"raw.a": 3, "raw.b": 2}, {"staging.v"})
    assert compaction.differences(original, original) == []
    assert compaction.differences(original, ({"raw.a": 3, "raw.c": 0}, {"staging.v", "staging.w"})) == [
        "table raw.b: missing from the copy",
        "table raw.c: not in the original",
        "view staging.w: not in the original",
    ]


def test_no_warehouse_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    with pytest.raises(CompactionError, match="no warehouse at .*warehouse.duckdb: nothing to compact"):
        compact()
    assert not (tmp_path / "warehouse.duckdb").exists()
