"""DuckDB connections to the warehouse, configured from the environment."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from c360 import campaigns
from c360.settings import Settings, get_settings

# What a failing query raises, for code that reads through this module without importing duckdb
# (ml/ must not: tests/test_layers.py).
Error = duckdb.Error

SCHEMAS = ("raw", "staging", "intermediate", "marts", "ml", "quality", "activation", "privacy")


def connect(path: Path | str | None = None, read_only: bool = False, settings: Settings | None = None):
    """A connection to the warehouse (``read_only``: one that never blocks other readers). While
    this process holds the warehouse (``held``), a connection of the held instance instead."""
    settings = settings or get_settings()
    path = Path(path or settings.warehouse)
    config: dict[str, str] = {}
    if settings.duckdb_threads:
        config["threads"] = str(settings.duckdb_threads)
    config["memory_limit"] = settings.duckdb_memory_limit
    with _hold_lock:
        if _hold.path is not None and _hold.path == path.resolve():
            if _hold.con is None:
                _hold.con = _open_for_writing(path, config, settings)
            cursor = _hold.con.cursor()
            _hold.in_use.add(cursor)
            return cursor
    if read_only:
        return _open(path, True, config, wait_s=0.0)
    return _open_for_writing(path, config, settings)


def _open_for_writing(path: Path, config: dict[str, str], settings: Settings):
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, False, config, wait_s=settings.writer_lock_wait_s)
    for schema in SCHEMAS:
        con.execute(f"create schema if not exists {schema}")
    # Exists before any export, so dbt builds marts.campaign_results on a fresh warehouse.
    campaigns.ensure_table(con)
    return con


# --- the warehouse held by a run ------------------------------------------------------------------
#
# An in-process run (`c360 run`) opens the warehouse once or more per step: 54 times in a daily
# run at 100k customers. Each open starts a DuckDB instance, ~30-45 ms however small the file (a
# 1 KB file takes 28 ms), and closing one that wrote checkpoints it, ~60 ms: about 4 s of a 60 s
# daily run (cProfile). While the run holds the warehouse, every connection is a cursor of one
# instance, opened at the first connection and kept between steps; closing a cursor leaves the
# instance open. DuckDB lets one instance per process open a file, so the instance is let go
# before anything else opens the file: dbt (in this process with its own settings, or as a
# subprocess), another run's step that got the warehouse pool first (this run's claim fails:
# orchestration/event_log.py), and the end of the run. A read-only request gets a cursor of the
# writing instance: the run is the file's one writer anyway. The instance's buffer pool outlives
# the connections, so it is let go when it caches more than HELD_MEMORY_CAP as a step's last
# connection closes (close()) and between steps (the run's memory hook, orchestration/memory.py).
# Readers in other processes (the insights app) wait for the run to end, as they wait for its
# steps; between two steps they no longer slip in.


class _Hold:
    def __init__(self) -> None:
        self.path: Path | None = None
        self.con: duckdb.DuckDBPyConnection | None = None
        # Cursors handed out and not yet given back through close(): the instance is only let go
        # by close() when none is in use (closing it closes them all).
        self.in_use: set = set()


_hold = _Hold()
_hold_lock = threading.Lock()

# Above this much DuckDB memory (its buffer pool: cached blocks of the tables read), a held
# instance is let go when its last connection closes, or after the step, rather than kept: a step
# that reads a big table and then works on the arrays would otherwise hold both (at 100k customers
# the recommender's peak rose 4.25 -> 4.61 GiB before close() did this).
HELD_MEMORY_CAP = 256 * 2**20


def close(con) -> None:
    """Close a connection from ``connect()``. A held instance that no other connection uses and
    that caches more than ``HELD_MEMORY_CAP`` is let go too."""
    con.close()
    with _hold_lock:
        if con not in _hold.in_use:  # not a cursor of the held instance
            return
        _hold.in_use.discard(con)
    let_go(if_caching_over=HELD_MEMORY_CAP, unused_only=True)


def step_ended() -> None:
    """Between two steps of a held run: no connection of the last step is in use any more; the
    instance is let go if it caches more than ``HELD_MEMORY_CAP``."""
    with _hold_lock:
        _hold.in_use.clear()
    let_go(if_caching_over=HELD_MEMORY_CAP)


@contextmanager
def held(path: Path | str | None = None) -> Iterator[None]:
    """Within: connections to the warehouse are cursors of one DuckDB instance, kept between
    them (see above); it is closed (and checkpointed) on leaving."""
    resolved = Path(path or get_settings().warehouse).resolve()
    with _hold_lock:
        if _hold.path is not None:
            raise RuntimeError(f"the warehouse is already held ({_hold.path})")
        _hold.path = resolved
    try:
        yield
    finally:
        with _hold_lock:
            _hold.path = None
        let_go()


def let_go(if_caching_over: int | None = None, unused_only: bool = False) -> bool:
    """Close the held instance, if one is open (it opens again at the next connection).
    ``if_caching_over``: only when its DuckDB memory is above that many bytes; ``unused_only``:
    only when no connection handed out is in use. True if closed."""
    with _hold_lock:
        con = _hold.con
        if con is None or (unused_only and _hold.in_use):
            return False
        if if_caching_over is not None:
            (used,) = con.execute(
                "select coalesce(sum(memory_usage_bytes), 0) from duckdb_memory()"
            ).fetchone()
            if used <= if_caching_over:
                return False
        _hold.con = None
        _hold.in_use.clear()
    con.close()
    return True


_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> int:
    """Bytes of a DuckDB size: '4GB', '5.5 GiB', '1500MB'."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
    if not match or match[2].upper() not in _UNITS:
        raise ValueError(f"not a memory size: {text!r} (e.g. 4GB, 3.5GiB, 1500MB)")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def memory_limit_bytes(con) -> int:
    """The connection's DuckDB ``memory_limit`` in bytes."""
    return parse_size(con.execute("select current_setting('memory_limit')").fetchone()[0])


@contextmanager
def memory_share(con, share: float) -> Iterator[None]:
    """Let the queries of this block use ``share`` of the connection's memory limit, then restore
    it: for a query that runs while the same process holds other big arrays (the recommender reads
    its fit data beside the temporal evaluation), so that both together stay within the one
    allowance. DuckDB spills what does not fit."""
    before = memory_limit_bytes(con)
    con.execute(f"set memory_limit = '{max(int(before * share) // 2**20, 64)}MiB'")
    try:
        yield
    finally:
        con.execute(f"set memory_limit = '{before // 2**20}MiB'")


def _open(path: Path, read_only: bool, config: dict[str, str], wait_s: float):
    """DuckDB lets one process write a file, and any open connection - even a short read-only
    query from the insights app or a poller - blocks the writer. A writer waits (with backoff)
    for such readers instead of failing its step; readers fail at once (the app says why)."""
    deadline, delay = time.monotonic() + wait_s, 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


@contextmanager
def warehouse(
    read_only: bool = False, settings: Settings | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(read_only=read_only, settings=settings)
    try:
        yield con
    finally:
        close(con)


def table_exists(con, schema: str, table: str, catalog: str | None = None) -> bool:
    """Whether ``schema.table`` exists: in any database the connection has attached, or only in
    ``catalog`` (an attached database's name)."""
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ? "
            "and table_catalog = coalesce(?, table_catalog)",
            [schema, table, catalog],
        ).fetchone()[0]
    )


def row_counts(con, schemas: tuple[str, ...] = SCHEMAS) -> list[tuple[str, str, int]]:
    """(schema, table, rows) for every table in the given schemas, views excluded."""
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_schema in (select unnest(?)) order by 1, 2",
        [list(schemas)],
    ).fetchall()
    return [(s, t, con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]) for s, t in tables]


def write_frame(
    con, table: str, frame, columns=None, *, append: bool = False, order_by: str | None = None
) -> None:
    """Write a pandas frame or Arrow table to ``schema.table``: replace it, or ``append`` rows.

    ``columns``: ``(name, sql type, ...)`` tuples (the tables' documented column schemas); each
    is cast to its type, in that order, so the table's types never depend on the frame's dtypes.
    Without them the frame's own columns are written as they are.
    """
    con.execute(f"create schema if not exists {table.split('.', 1)[0]}")
    view = f"_frame_{abs(hash(table))}"
    select = ", ".join(f'cast("{c[0]}" as {c[1]}) as "{c[0]}"' for c in columns) if columns else "*"
    order = f" order by {order_by}" if order_by else ""
    con.register(view, frame)
    try:
        if append:
            con.execute(f"insert into {table} select {select} from {view}{order}")
        else:
            con.execute(f"create or replace table {table} as select {select} from {view}{order}")
    finally:
        con.unregister(view)
