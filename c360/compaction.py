"""Compaction: rewrite the warehouse into a fresh file, giving back the space daily runs leave.

Why it is needed: DuckDB reuses a freed block only whole, and the daily run's delete + insert into
the incremental models leaves row groups partly filled. At 100k customers the file grew 13.5 MB a
day (1.1%) over a week of one-day deliveries while a compacted copy of the last day was the full
build's size (BENCHMARKS.md, thirtieth session). ``COPY FROM DATABASE`` into a new file writes every
table densely. The copy is checked against the original (the same tables with the same row counts,
the same views) before it replaces the file, so a copy that failed or came out short leaves the
warehouse as it was. The erasure uses the same rewrite to leave no byte of an erased person behind.

It needs the file to itself: run it when no run writes and the insights app is closed. The
scheduled job (``warehouse_compaction_job``) runs in the warehouse pool, after the other writers.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from c360 import warehouse
from c360.settings import Settings, get_settings

_COPY = "_c360_compact"
# The copy is written beside the warehouse before the swap: ask for the data's size plus this
# share of room, so the disk is not filled to its last byte while the copy is made.
_HEADROOM = 0.10


class CompactionError(RuntimeError):
    """The warehouse could not be compacted; it is left as it was."""


@dataclass(frozen=True)
class Compaction:
    path: Path
    bytes_before: int
    bytes_after: int
    tables: int
    views: int
    rows: int
    seconds: float
    # Erasures whose own rewrite had failed (the file was busy): this one removed their values.
    erasures_completed: int = 0

    @property
    def reclaimed_bytes(self) -> int:
        return self.bytes_before - self.bytes_after


def inventory(con, catalog: str) -> tuple[dict[str, int], set[str]]:
    """(rows per ``schema.table``, ``schema.view`` names) of one attached database."""
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() "
        "where database_name = ? and not internal and not temporary order by 1, 2",
        [catalog],
    ).fetchall()
    rows = {
        f"{s}.{t}": con.execute(f'select count(*) from "{catalog}"."{s}"."{t}"').fetchone()[0]
        for s, t in tables
    }
    views = con.execute(
        "select schema_name, view_name from duckdb_views() "
        "where database_name = ? and not internal and not temporary",
        [catalog],
    ).fetchall()
    return rows, {f"{s}.{v}" for s, v in views}


def differences(before: tuple[dict[str, int], set[str]], after: tuple[dict[str, int], set[str]]) -> list[str]:
    """What the copy lacks or has otherwise than the original, one line each (empty: equal)."""
    (rows_a, views_a), (rows_b, views_b) = before, after
    lines = [f"table {t}: missing from the copy" for t in sorted(rows_a.keys() - rows_b.keys())]
    lines += [f"table {t}: not in the original" for t in sorted(rows_b.keys() - rows_a.keys())]
    lines += [
        f"table {t}: {rows_a[t]} rows, the copy {rows_b[t]}"
        for t in sorted(rows_a.keys() & rows_b.keys())
        if rows_a[t] != rows_b[t]
    ]
    lines += [f"view {v}: missing from the copy" for v in sorted(views_a - views_b)]
    lines += [f"view {v}: not in the original" for v in sorted(views_b - views_a)]
    return lines


def compact(path: Path | str | None = None, settings: Settings | None = None) -> Compaction:
    """Rewrite the warehouse file densely and swap it in; raise ``CompactionError`` (the file
    untouched) when another process has it open, the disk lacks room for the copy, or the copy
    differs from the original."""
    settings = settings or get_settings()
    path = Path(path or settings.warehouse)
    if not path.exists():
        raise CompactionError(f"no warehouse at {path}: nothing to compact")
    started = time.perf_counter()
    fresh = path.with_name(path.name + ".compact")
    fresh.unlink(missing_ok=True)
    # A run of this process may hold the file open (c360/warehouse.py): close it first, so the
    # swap below replaces a file nobody in this process reads.
    warehouse.let_go()
    bytes_before = path.stat().st_size
    try:
        con = warehouse.connect(path, settings=settings)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise CompactionError(f"the warehouse {path} could not be opened: {exc}") from exc
        raise CompactionError(
            f"the warehouse {path} is open in another process (a run, the insights app, a "
            f"notebook): close it and compact again. DuckDB said: {exc}"
        ) from exc
    try:
        con.execute("checkpoint")
        (catalog,) = con.execute("select current_database()").fetchone()
        (block_size, used_blocks) = con.execute(
            "select block_size, used_blocks from pragma_database_size() where database_name = ?",
            [catalog],
        ).fetchone()
        needed = int(block_size * used_blocks * (1 + _HEADROOM))
        free = shutil.disk_usage(path.parent).free
        if free < needed:
            raise CompactionError(
                f"compacting {path} writes a copy of its data beside it: it needs "
                f"{needed / 2**20:,.0f} MiB free on that disk and has {free / 2**20:,.0f} MiB"
            )
        original = inventory(con, catalog)
        con.execute(f"attach '{fresh}' as {_COPY}")
        try:
            con.execute(f'copy from database "{catalog}" to {_COPY}')
            wrong = differences(original, inventory(con, _COPY))
            if wrong:
                raise CompactionError(
                    f"the compacted copy of {path} differs from it; the warehouse is left as it was: "
                    + "; ".join(wrong[:10])
                )
            erasures = _complete_erasures(con, _COPY)
        finally:
            con.execute(f"detach {_COPY}")
    except BaseException:
        fresh.unlink(missing_ok=True)
        fresh.with_name(fresh.name + ".wal").unlink(missing_ok=True)
        raise
    finally:
        warehouse.close(con)
        warehouse.let_go()
    os.replace(fresh, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    tables, views = original
    return Compaction(
        path=path,
        bytes_before=bytes_before,
        bytes_after=path.stat().st_size,
        tables=len(tables),
        views=len(views),
        rows=sum(tables.values()),
        seconds=time.perf_counter() - started,
        erasures_completed=erasures,
    )


def _complete_erasures(con, catalog: str) -> int:
    """In the checked copy, before it replaces the file: mark as compacted the erasures logged
    that were not. An erasure whose own rewrite failed left the person's values in free blocks of
    the old file, which this copy does not have (c360/privacy/erasure.py). Returns how many."""
    if not warehouse.table_exists(con, "privacy", "erasure_log", catalog=catalog):
        return 0
    log = f"{catalog}.privacy.erasure_log"
    (pending,) = con.execute(f"select count(*) from {log} where not coalesce(compacted, false)").fetchone()
    if pending:
        con.execute(f"update {log} set compacted = true where not coalesce(compacted, false)")
    return pending
