"""Which landing files are new: files under ``$C360_HOME/landing/<source>/`` whose SHA-256 is
not yet in ``raw._load_log`` (the loader's own record, read read-only) nor already requested
by a sensor (its cursor). Plain functions, so the sensors stay thin and testable."""

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from c360.ingest.loader import file_checksum, landing_files

# A producer should write elsewhere and rename into the landing folder; a file modified this
# recently may still be being written and waits for the next tick.
SETTLE_SECONDS = 2.0

# Checksums by (path, size, mtime), kept for the life of the code server so a tick hashes only
# new or changed files.
_CHECKSUMS: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class LandingFile:
    source: str
    path: Path
    checksum: str


class WarehouseBusy(Exception):
    """Another process holds DuckDB's write lock; the next tick tries again."""


def checksum_cached(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKSUMS:
        _CHECKSUMS[key] = file_checksum(path)
    return _CHECKSUMS[key]


def settled_files(landing: Path, sources: list[str], now: float | None = None) -> list[LandingFile]:
    now = time.time() if now is None else now
    out = []
    for source in sources:
        for path in landing_files(landing, source):
            if now - path.stat().st_mtime >= SETTLE_SECONDS:
                out.append(LandingFile(source, path, checksum_cached(path)))
    return out


def loaded_checksums(warehouse: Path, sources: list[str]) -> set[tuple[str, str]]:
    """(source, checksum) of every file the loader recorded. Opens the warehouse read-only for
    milliseconds; a missing warehouse has loaded nothing."""
    if not warehouse.exists():
        return set()
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusy(str(exc)) from exc
        raise
    try:
        has_log = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = '_load_log'"
        ).fetchone()[0]
        if not has_log:
            return set()
        rows = con.execute(
            "select distinct source, checksum from raw._load_log where source in (select unnest(?))",
            [sources],
        ).fetchall()
    finally:
        con.close()
    return {(s, c) for s, c in rows}


def scan(
    landing: Path, warehouse: Path, sources: list[str], requested: set[str]
) -> tuple[list[LandingFile], set[str]]:
    """(files to request now, checksums of every settled file not loaded yet). A file to request
    is neither loaded nor already requested; the same bytes under two names count once."""
    files = settled_files(landing, sources)
    if not files:
        return [], set()
    loaded = loaded_checksums(warehouse, sources)
    unloaded = [f for f in files if (f.source, f.checksum) not in loaded]
    fresh = {}
    for f in sorted(unloaded, key=lambda f: (f.source, f.path.name)):
        if f.checksum not in requested:
            fresh.setdefault(f.checksum, f)
    return sorted(fresh.values(), key=lambda f: (f.source, f.path.name)), {f.checksum for f in unloaded}


def run_key(files: list[LandingFile]) -> str:
    """The sorted checksums: the same set of files can never start a second run. Several files
    are folded into one digest to keep the key short."""
    checksums = sorted(f.checksum for f in files)
    if len(checksums) == 1:
        return checksums[0]
    return "sha256-of-" + str(len(checksums)) + ":" + hashlib.sha256(",".join(checksums).encode()).hexdigest()


def read_cursor(cursor: str | None) -> set[str]:
    return set(json.loads(cursor)["requested"]) if cursor else set()


def write_cursor(requested: set[str], still_pending: set[str]) -> str:
    """Checksums requested but not loaded yet; loaded ones are remembered by raw._load_log."""
    return json.dumps({"requested": sorted(requested & still_pending)})


def cart_clock() -> str:
    # Production sets C360_CART_CLOCK=wall_clock where the daemon runs (docs/DEPLOYMENT.md).
    return os.environ.get("C360_CART_CLOCK", "event_time")
