"""Landing files -> ``raw.<source>`` tables, many files per statement.

``load_source`` reads a source's new files in batches (same header, up to ``BATCH_BYTES``): each
file is checked against the landing contract (``c360.contracts``), then the batch is parsed by
one DuckDB ``read_csv`` over the file list with typed columns (malformed lines land in a reject
table with their file and line numbers) into one TEMP table, and every row is judged by the
row-level rules in one pass: duplicate keys are found inside the batch and by one probe of the
keys already in raw. Only the rows that break a rule are set apart; valid rows go straight to
``raw.<source>`` with their sensitive values pseudonymised, encrypted and masked, the others to
``quality.quarantine`` with the rule they broke, in one transaction per batch. ``raw._load_log``
records each file once, by checksum, with rows in / loaded / quarantined, so that rows are
conserved and checkable file by file.

Files come as they are exported: a UTF-8 byte-order mark, GB18030 or Windows-1252 text, stray
NUL bytes and optional columns left out are all read (``c360.ingest.encoding``). A file that
cannot be read or breaks the contract is rejected: ``load_source`` records it in the load log
with its reason (status ``rejected``, no rows) and goes on with the other files (a batch that
DuckDB cannot parse as a whole is read again file by file); it is not tried again until its
bytes change. A 0-byte or header-only file is recorded as ``empty``.

Plaintext sensitive values only ever live in TEMP tables (memory), never in the database file,
and no error or reason quotes a value from a file: they name the file, a column or an offset.
"""

from __future__ import annotations

import csv
import hashlib
import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from c360.contracts import SOURCES, Source
from c360.ingest import encoding, protect
from c360.privacy import crypto, suppression
from c360.privacy.keys import Keyring
from c360.settings import get_settings

LANDING_SUFFIXES = (".csv", ".parquet")
# A column whose values fail to parse on more than this share of lines was retyped upstream:
# that is schema drift, not a few bad rows.
RETYPED_SHARE = 0.5
LOADED, EMPTY, REJECTED = "loaded", "empty", "rejected"


class FileRejected(ValueError):
    """A landing file that cannot be loaded as it is; nothing was loaded from it. ``reason``
    names what is wrong and where (column, byte offset), never a value from the file."""

    checksum: str | None = None  # of the file's bytes, when they could be read

    def __init__(self, file: Path, reason: str):
        self.file, self.reason = file, reason
        super().__init__(f"{file}: {reason}. Nothing was loaded from this file.")


class SchemaDriftError(FileRejected):
    """A landing file does not match its source's contract; nothing was loaded from it."""

    def __init__(self, file: Path, column: str, problem: str):
        self.column, self.problem = column, problem
        super().__init__(file, f"column '{column}' {problem}")


@dataclass
class FileLoad:
    source: str
    file: str
    checksum: str | None
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    extra_columns: list[str] = field(default_factory=list)
    absent_columns: list[str] = field(default_factory=list)  # optional ones, loaded as null
    skipped: bool = False  # these bytes were seen before (loaded, empty or rejected)
    status: str = LOADED
    reason: str | None = None
    encoding: str | None = None
    nul_bytes_removed: int = 0
    # The file as it was read (raw._landing_seen), noted with the load's log row.
    bytes: int | None = None
    modified_ns: int | None = None

    @property
    def conserved(self) -> bool:
        return self.rows_in == self.rows_loaded + self.rows_quarantined


LOAD_LOG_COLUMNS = {
    "source": "varchar",
    "file": "varchar",
    "checksum": "varchar",
    "rows_in": "bigint",
    "rows_loaded": "bigint",
    "rows_quarantined": "bigint",
    "extra_columns": "varchar",
    "run_id": "varchar",
    "loaded_at": "timestamp",
    "status": "varchar",
    "reason": "varchar",
    "encoding": "varchar",
    "nul_bytes_removed": "bigint",
}
# Columns added after the first release; a warehouse made before gets them, its rows 'loaded'.
LOAD_LOG_ADDED = {"status": "'loaded'", "reason": None, "encoding": None, "nul_bytes_removed": None}


# Every landing file the loader has read, by name, with the size and modification time it had and
# the checksum of its bytes then. A file whose name, size and modification time match a row, and
# whose checksum the load log holds, is known without reading it again (make's and git's rule):
# at 1M customers the landing is 13 GB, which every run hashed again only to skip it. The same
# rows tell `unchanged_since` (orchestration/ingest) that a file re-sent under a new name holds
# bytes already loaded, and that a file overwritten under its old name is new.
LANDING_SEEN_DDL = """
create table if not exists raw._landing_seen (
    source varchar, file varchar, bytes bigint, modified_ns bigint, checksum varchar, seen_at timestamp,
    primary key (source, file)
)"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Every raw table of the contract, the load log and the quarantine, whatever has landed."""
    for schema in ("raw", "quality"):
        con.execute(f"create schema if not exists {schema}")
    con.execute(
        "create table if not exists raw._load_log ("
        + ", ".join(f"{name} {typ}" for name, typ in LOAD_LOG_COLUMNS.items())
        + ")"
    )
    present = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'raw' and table_name = '_load_log'"
        ).fetchall()
    }
    for name, default in LOAD_LOG_ADDED.items():
        if name not in present:
            suffix = f" default {default}" if default else ""
            con.execute(
                f"alter table raw._load_log add column if not exists {name} {LOAD_LOG_COLUMNS[name]}{suffix}"
            )
    con.execute(LANDING_SEEN_DDL)
    con.execute(
        """
        create table if not exists quality.quarantine (
            source varchar, source_file varchar, record_id varchar, rule varchar, raw varchar,
            run_id varchar, quarantined_at timestamp
        )"""
    )
    for source in SOURCES.values():
        cols = ", ".join(f'"{name}" {typ}' for name, typ in raw_columns(source))
        con.execute(f"create table if not exists raw.{source.name} ({cols})")


def raw_columns(source: Source) -> list[tuple[str, str]]:
    """Columns of ``raw.<source>``: clear columns as is, protected ones replaced by their forms."""
    out: list[tuple[str, str]] = []
    for col in source.columns:
        if not col.protect:
            out.append((col.name, col.type))
            continue
        if col.hashed:
            out.append((f"{col.name}_hash", "VARCHAR"))
        if col.encrypted:
            out.append((f"{col.name}_enc", "VARCHAR"))
        out.append((f"{col.name}_masked", "VARCHAR"))
    out += [("_source_file", "VARCHAR"), ("_loaded_at", "TIMESTAMP"), ("_run_id", "VARCHAR")]
    return out


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def landing_files(landing: Path, source: str) -> list[Path]:
    folder = landing / source
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in LANDING_SUFFIXES and p.is_file())


def logged(con, source: str, checksum: str | None) -> tuple[str, str | None] | None:
    """(status, reason) of the first record of these bytes for this source, or None."""
    if checksum is None:
        return None
    return con.execute(
        "select coalesce(status, 'loaded'), reason from raw._load_log where source = ? and checksum = ? "
        "order by loaded_at limit 1",
        [source, checksum],
    ).fetchone()


def already_loaded(con, source: str, checksum: str) -> bool:
    return logged(con, source, checksum) is not None


def logged_unchanged(con, source: str, file: str, stat) -> tuple[str, str, str | None] | None:
    """(checksum, status, reason) of a file seen before with this size and modification time
    whose bytes the load log holds, or None (never seen, changed since, or not logged yet)."""
    return con.execute(
        "select s.checksum, coalesce(l.status, 'loaded'), l.reason from raw._landing_seen s "
        "join raw._load_log l on l.source = s.source and l.checksum = s.checksum "
        "where s.source = ? and s.file = ? and s.bytes = ? and s.modified_ns = ? "
        "order by l.loaded_at limit 1",
        [source, file, stat.st_size, stat.st_mtime_ns],
    ).fetchone()


def note_seen(con, load: FileLoad, now: datetime) -> None:
    con.execute(
        "insert or replace into raw._landing_seen values (?, ?, ?, ?, ?, ?)",
        [load.source, load.file, load.bytes, load.modified_ns, load.checksum, now],
    )


def _sql_timestamp(value: datetime) -> str:
    return f"timestamp '{value.isoformat(sep=' ')}'"


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _header(path: Path) -> list[str]:
    if path.suffix.lower() == ".parquet":
        return [
            r[0] for r in duckdb.sql(f"describe select * from read_parquet({_sql_str(str(path))})").fetchall()
        ]
    # utf-8-sig: a byte-order mark is not part of the first column's name.
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh), [])


def _check_header(path: Path, source: Source, header: list[str]) -> list[str]:
    """Required columns must be there, each name once; returns the optional ones absent."""
    seen: set[str] = set()
    for name in header:
        if name in seen and name in source.column_names:
            raise SchemaDriftError(path, name, "appears more than once in the header")
        seen.add(name)
    for col in source.columns:
        if col.required and col.name not in seen:
            raise SchemaDriftError(path, col.name, "is missing from the header")
    return [c.name for c in source.columns if c.name not in seen]


def _read_names(header: list[str]) -> list[str]:
    """Header names DuckDB can take: ignored columns that are unnamed or repeated get a name."""
    out: list[str] = []
    for i, name in enumerate(header, start=1):
        out.append(name if name and name not in out else f"_ignored_column_{i}")
    return out


def _select_contract(source: Source, header: list[str]) -> str:
    """The contract's columns in order; optional ones absent from the file as typed nulls."""
    present = set(header)
    return ", ".join(
        f'"{c.name}"' if c.name in present else f'cast(null as {c.type}) as "{c.name}"'
        for c in source.columns
    )


# A batch is read by one statement. Its size is bounded so that its TEMP tables (plaintext,
# memory only) stay small beside the machine's memory, and so that a batch that must be retried
# file by file (a file DuckDB cannot parse at all) costs little.
BATCH_BYTES = 1 << 30
BATCH_FILES = 256
# The loader's TEMP tables, dropped after every batch.
_TEMPS = ("_parsed", "_rejects", "_reject_scans", "_rej", "_files", "_loaded_keys", "_repeats", "_bad")


@dataclass
class _Item:
    """A landing file ready to read: bytes checked, header checked, readable as UTF-8."""

    path: Path  # the landing file, which errors name
    read: Path  # what DuckDB reads: the landing file or its UTF-8 copy
    header: list[str]
    load: FileLoad
    size: int

    @property
    def parquet(self) -> bool:
        return self.path.suffix.lower() == ".parquet"

    @property
    def batch_key(self) -> tuple:
        # Files are read together only with the same header: one column list for the statement.
        return (self.parquet, tuple(_read_names(self.header)))


def _prepare(
    con, source: Source, path: Path, rel: str, run_id, now, stack: ExitStack, scratch_root, before_check
):
    """An ``_Item``, or the ``FileLoad`` of a file with nothing to read (seen before, 0 bytes).
    Raises ``FileRejected`` (its checksum set when the bytes could be read). ``before_check``
    is called with the checksum before the load log is asked about it."""
    parquet = path.suffix.lower() == ".parquet"
    try:
        stat = path.stat()
        if known := logged_unchanged(con, source.name, rel, stat):
            checksum, status, reason = known
            return FileLoad(
                source=source.name, file=rel, checksum=checksum, skipped=True, status=status, reason=reason
            )
        scan = None if parquet else encoding.scan_bytes(path)
        checksum = file_checksum(path) if parquet else scan.checksum
    except OSError as exc:
        raise FileRejected(path, f"cannot be read ({exc.strerror or type(exc).__name__})") from exc
    load = FileLoad(
        source=source.name, file=rel, checksum=checksum, bytes=stat.st_size, modified_ns=stat.st_mtime_ns
    )
    try:
        before_check(checksum)
        if seen := logged(con, source.name, checksum):
            load.skipped = True
            load.status, load.reason = seen
            note_seen(con, load, now)  # bytes loaded before, under this name or another
            return load
        if path.stat().st_size == 0:
            load.status, load.reason = EMPTY, "0 bytes"
            _log(con, load, run_id, now)
            return load
        read = path
        if not parquet:
            try:
                readable = stack.enter_context(encoding.readable_csv(path, scan, scratch_root))
            except encoding.UndecodableFile as exc:
                raise FileRejected(path, exc.problem) from None
            load.encoding, load.nul_bytes_removed = readable.encoding, readable.nul_bytes_removed
            read = readable.path
        header = _header(read)
        load.absent_columns = _check_header(path, source, header)
        load.extra_columns = [h for h in dict.fromkeys(header) if h and h not in source.column_names]
        return _Item(path, read, header, load, path.stat().st_size)
    except FileRejected as exc:
        exc.checksum = checksum
        raise


def _read_batch(con, source: Source, items: list[_Item]) -> None:
    """Parse every file of the batch in one statement into TEMP ``_parsed`` (contract columns and
    ``_file``, the path read); the lines DuckDB rejected go to ``_rejects``/``_reject_scans``.
    Raises ``FileRejected`` when the statement fails as a whole."""
    known = {c.name: c for c in source.columns}
    first = items[0]
    if first.parquet:  # one file per batch
        path, header, casts = str(first.read), first.header, []
        for name in source.column_names:
            if name not in header:
                casts.append(f'cast(null as {known[name].type}) as "{name}"')
                continue
            col = known[name]
            try:
                con.execute(
                    f'select cast("{name}" as {col.type}) from read_parquet({_sql_str(path)}) limit 0'
                )
                con.execute(f'select count(cast("{name}" as {col.type})) from read_parquet({_sql_str(path)})')
            except duckdb.Error as exc:
                # DuckDB's message may quote the value that failed: name the column only.
                raise SchemaDriftError(first.path, name, f"cannot be read as {col.type}") from exc
            casts.append(f'cast("{name}" as {col.type}) as "{name}"')
        con.execute(
            f"create temp table _parsed as select {', '.join(casts)}, {_sql_str(path)} as _file "
            f"from read_parquet({_sql_str(path)})"
        )
        con.execute(
            "create temp table _rejects (scan_id ubigint, file_id ubigint, line bigint, column_name varchar, "
            "error_type varchar, csv_line varchar)"
        )
        con.execute("create temp table _reject_scans (scan_id ubigint, file_id ubigint, file_path varchar)")
        return
    columns = (
        "{"
        + ", ".join(
            f"{_sql_str(n)}: {_sql_str(known[n].type if n in known else 'VARCHAR')}"
            for n in _read_names(first.header)
        )
        + "}"
    )
    files = "[" + ", ".join(_sql_str(str(i.read)) for i in items) + "]"
    try:
        con.execute(
            f"""
            create temp table _parsed as
            select {_select_contract(source, first.header)}, filename as _file
            from read_csv({files}, header = true, columns = {columns}, auto_detect = false,
                          delim = ',', quote = '"', escape = '"', strict_mode = true, filename = true,
                          store_rejects = true, rejects_table = '_rejects', rejects_scan = '_reject_scans')
            """
        )
    except duckdb.Error as exc:
        # DuckDB's CSV errors quote the offending line: keep the line number only.
        line = re.search(r"[Ll]ine:? ?(\d+)", str(exc))
        where = f" near line {line.group(1)}" if line else ""
        raise FileRejected(first.path, f"cannot be parsed as CSV{where} ({type(exc).__name__})") from exc


def _retyped(counts: dict[int, int], con) -> dict[int, tuple[str, int]]:
    """Per file (``_fidx``), the column whose values failed to parse on most lines, when that
    is most of the file: the column was retyped upstream."""
    worst: dict[int, tuple[str, int]] = {}
    for fidx, column, n in con.execute(
        "select _fidx, column_name, count(distinct line) from _rej where error_type = 'CAST' "
        "group by 1, 2 order by 3 desc"
    ).fetchall():
        worst.setdefault(fidx, (column, n))
    return {
        f: (column, n)
        for f, (column, n) in worst.items()
        if n > RETYPED_SHARE * (counts.get(f, 0) + n) and n >= 3
    }


def _drop_suppressed(con, source: Source, keyring: Keyring) -> tuple[dict[int, int], dict[int, int]]:
    """Remove rows and unparseable lines of erased people from ``_parsed`` and ``_rej``; returns
    how many of each per file (the load log and conservation are per file). Which rows and lines
    match the list is ``suppression``'s rule."""
    if not suppression.has_suppressions(con):
        return {}, {}
    where = suppression.suppressed_rows_sql(source, keyring)
    if where is None:
        return {}, {}
    rows = dict(
        con.execute(
            f"select _fidx, count(*) from _parsed join _files using (_file) where {where} group by 1"
        ).fetchall()
    )
    if rows:
        con.execute(f"delete from _parsed where {where}")

    matches = suppression.suppressed_line_matcher(con, source, keyring)
    bad = [
        (fidx, line)
        for fidx, line, text in con.execute(
            "select _fidx, line, any_value(csv_line) from _rej group by 1, 2"
        ).fetchall()
        if matches(text)
    ]
    lines: dict[int, int] = {}
    for fidx, line in bad:
        lines[fidx] = lines.get(fidx, 0) + 1
        con.execute("delete from _rej where _fidx = ? and line = ?", [fidx, line])
    return rows, lines


def _load_batch(
    con, source: Source, items: list[_Item], keyring, run_id, now
) -> list[FileLoad | FileRejected]:
    """Load the files of one batch in one transaction: one parse, one probe of the keys already
    loaded, the rules judged in one pass, the rows that load protected on their way into raw.
    A file that breaks the contract (a retyped column) is returned as ``FileRejected`` and its
    rows left out; the others load."""
    name = source.name
    for tmp in _TEMPS:
        con.execute(f"drop table if exists {tmp}")
    _read_batch(con, source, items)
    files = pa.table(
        {
            "_fidx": pa.array(range(len(items)), pa.int64()),
            "_file": pa.array([str(i.read) for i in items], pa.string()),
            "_rel": pa.array([i.load.file for i in items], pa.string()),
        }
    )
    con.register("_files_view", files)
    try:
        # _base: the first rowid of each file, so _row is the row's place in its file (1, 2...);
        # inserting into a table keeps the order the files were read in.
        con.execute(
            "create temp table _files as select f._fidx, f._file, f._rel, min(p.rowid) as _base "
            "from _files_view f left join _parsed p using (_file) group by all"
        )
    finally:
        con.unregister("_files_view")
    con.execute(
        "create temp table _rej as select f._fidx, r.line, r.column_name, cast(r.error_type as varchar) "
        "as error_type, r.csv_line from _rejects r join _reject_scans s using (scan_id, file_id) "
        "join _files f on f._file = s.file_path"
    )
    parsed = dict(
        con.execute("select _fidx, count(*) from _parsed join _files using (_file) group by 1").fetchall()
    )
    rejected = dict(con.execute("select _fidx, count(distinct line) from _rej group by 1").fetchall())

    out: list[FileLoad | FileRejected | None] = [None] * len(items)
    for fidx, (column, n) in _retyped(parsed, con).items():
        # The message names the column only: a rejected line may hold personal data.
        exc = SchemaDriftError(
            items[fidx].path, column, f"has values of the wrong type on {n} lines (retyped upstream?)"
        )
        exc.checksum = items[fidx].load.checksum
        out[fidx] = exc
        con.execute("delete from _parsed where _file = ?", [str(items[fidx].read)])
        con.execute("delete from _rej where _fidx = ?", [fidx])
    # Rows of erased people are dropped unseen and counted as quarantined (rule "erased").
    erased_rows, erased_lines = _drop_suppressed(con, source, keyring)

    key = f'"{source.key}"'
    # The keys of this batch already in raw: one probe of raw per batch, built on the batch's keys.
    con.execute(
        f"create temp table _loaded_keys as select distinct {key} from raw.{name} "
        f"where {key} in (select {key} from _parsed)"
    )
    # Rows whose key is on an earlier row of the batch (rowid follows the files' order): ranked
    # among the repeated keys only, not by a window over the whole batch.
    con.execute(
        f"""
        create temp table _repeats as
        select _rid from (
            select rowid as _rid, row_number() over (partition by {key} order by rowid) as _n from _parsed
            where {key} in (select {key} from _parsed group by all having count(*) > 1)
        ) where _n > 1
        """
    )
    duplicate = f"{key} in (select {key} from _loaded_keys) or rowid in (select _rid from _repeats)"
    # Only the rows that break a rule are kept apart (with their place in their file); the
    # others go from _parsed to raw as they are.
    con.execute(
        f"""
        create temp table _bad as
        select q._rid, f._fidx, q._rid - f._base + 1 as _row, q._rule
        from (select rowid as _rid, _file, {rule_expression(source, now, duplicate=duplicate)} as _rule from _parsed) q
        join _files f using (_file) where q._rule is not null
        """
    )
    good = "_parsed b join _files f using (_file) where b.rowid not in (select _rid from _bad)"
    tokens = protect.encrypted_tokens(con, source, keyring, good)
    rejects = protect.protected_rejects(con, source, keyring)

    con.register("_rej_protected", rejects)
    if tokens is not None:
        con.register("_enc_tokens", tokens)
    con.execute("begin transaction")
    try:
        con.execute(
            """
            insert into quality.quarantine
            select ?, f._rel, 'line:' || r.line, 'malformed_line', r.raw, ?, ?
            from _rej_protected r join _files f using (_fidx) order by r._fidx, r.line
            """,
            [name, run_id, now],
        )
        con.execute(
            f"""
            insert into quality.quarantine
            select ?, f._rel, coalesce(cast(b.{key} as varchar), 'row:' || q._row), q._rule,
                   {protect.row_json_sql(source, keyring)}, ?, ?
            from _bad q join _parsed b on b.rowid = q._rid join _files f on f._fidx = q._fidx
            order by q._fidx, q._row
            """,
            [name, run_id, now],
        )
        quarantined = dict(con.execute("select _fidx, count(*) from _bad group by 1").fetchall())
        select = ", ".join(protect.raw_select_sql(source, keyring))
        if tokens is not None:
            con.execute(
                f"insert into raw.{name} by name select {select}, f._rel as _source_file, ? as _loaded_at, "
                f"? as _run_id from _parsed b join _files f using (_file) join _enc_tokens e on e._rid = b.rowid",
                [now, run_id],
            )
        else:
            con.execute(
                f"insert into raw.{name} by name select {select}, f._rel as _source_file, ? as _loaded_at, "
                f"? as _run_id from {good}",
                [now, run_id],
            )
        for fidx, item in enumerate(items):
            if out[fidx] is not None:
                continue
            load = item.load
            erased = erased_rows.get(fidx, 0) + erased_lines.get(fidx, 0)
            if erased:
                con.execute(
                    "insert into quality.quarantine select ?, ?, null, 'erased', null, ?, ? from range(?)",
                    [name, load.file, run_id, now, erased],
                )
            load.rows_in = parsed.get(fidx, 0) + rejected.get(fidx, 0)
            if load.rows_in == 0:
                load.status, load.reason = EMPTY, "header only, no rows"
            q = quarantined.get(fidx, 0)
            load.rows_loaded = parsed.get(fidx, 0) - erased_rows.get(fidx, 0) - q
            load.rows_quarantined = q + rejected.get(fidx, 0) - erased_lines.get(fidx, 0) + erased
            _log(con, load, run_id, now)
            out[fidx] = load
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_rej_protected")
        if tokens is not None:
            con.unregister("_enc_tokens")
    return out


def _load_items(
    con, source: Source, items: list[_Item], keyring, run_id, now
) -> list[FileLoad | FileRejected]:
    """``_load_batch``; when the batch cannot be parsed as a whole, each file on its own, so
    that one bad file never stops the good ones."""
    try:
        return _load_batch(con, source, items, keyring, run_id, now)
    except FileRejected as exc:
        if len(items) == 1:
            exc.checksum = items[0].load.checksum
            return [exc]
    finally:
        for tmp in _TEMPS:
            con.execute(f"drop table if exists {tmp}")
    return [r for item in items for r in _load_items(con, source, [item], keyring, run_id, now)]


def _log(con, load: FileLoad, run_id: str, now: datetime) -> None:
    # In the load's transaction: a file is known unchanged only once its outcome is logged.
    if load.modified_ns is not None and load.checksum is not None:
        note_seen(con, load, now)
    row = {
        "source": load.source,
        "file": load.file,
        "checksum": load.checksum,
        "rows_in": load.rows_in,
        "rows_loaded": load.rows_loaded,
        "rows_quarantined": load.rows_quarantined,
        "extra_columns": ",".join(load.extra_columns) or None,
        "run_id": run_id,
        "loaded_at": now,
        "status": load.status,
        "reason": load.reason,
        "encoding": load.encoding,
        "nul_bytes_removed": load.nul_bytes_removed,
    }
    con.execute(
        f"insert into raw._load_log ({', '.join(row)}) values ({', '.join('?' * len(row))})",
        list(row.values()),
    )


def record_rejected(con, load: FileLoad, run_id: str = "manual", now: datetime | None = None) -> None:
    """Log a rejected file (no rows) so that it is not tried again until its bytes change."""
    ensure_tables(con)
    load.status, load.rows_in, load.rows_loaded, load.rows_quarantined = REJECTED, 0, 0, 0
    _log(con, load, run_id, now or datetime.now().replace(microsecond=0))


def _scratch_root() -> Path:
    return get_settings().home / "scratch"


def load_file(
    con: duckdb.DuckDBPyConnection,
    source_name: str,
    path: Path,
    keyring: Keyring,
    run_id: str = "manual",
    now: datetime | None = None,
    landing_root: Path | None = None,
    scratch_root: Path | None = None,
) -> FileLoad:
    """Load one landing file. Idempotent: a file whose checksum was logged before is skipped.

    Raises ``FileRejected`` (``SchemaDriftError`` for the contract) and writes nothing when the
    file cannot be loaded; ``load_source`` records such files. Non-UTF-8 text is decoded into a
    UTF-8 copy under ``scratch_root`` (default ``$C360_HOME/scratch``), removed afterwards."""
    source = SOURCES[source_name]
    now = now or datetime.now().replace(microsecond=0)
    rel = str(path.relative_to(landing_root)) if landing_root else path.name
    ensure_tables(con)
    with ExitStack() as stack:
        item = _prepare(
            con, source, path, rel, run_id, now, stack, scratch_root or _scratch_root(), _no_check
        )
        if isinstance(item, FileLoad):
            return item
        [result] = _load_items(con, source, [item], keyring, run_id, now)
    if isinstance(result, FileRejected):
        raise result
    return result


def _no_check(checksum: str) -> None:
    pass


# --- row-level rules --------------------------------------------------------------------------

AMOUNT_COLUMNS = ("amount", "unit_price", "price")


def rule_expression(source: Source, now: datetime, duplicate: str | None = None) -> str:
    """One SQL CASE giving the first rule a row breaks, or NULL. Order matters: a row is
    reported for its first problem only.

    ``duplicate`` is the SQL condition of a duplicate key; by default, a key already in
    ``raw.<source>`` or on an earlier row (by ``_row``) of the table judged."""
    whens: list[str] = []
    required = [c for c in source.columns if c.required]
    if required:
        cond = " or ".join(
            f'"{c.name}" is null' + (f" or trim(\"{c.name}\") = ''" if c.type == "VARCHAR" else "")
            for c in required
        )
        whens.append(f"when {cond} then 'missing_required'")
    names = set(source.column_names)
    if "email" in names:
        whens.append(
            f"when nullif(trim(email), '') is not null and {crypto.normalise_email_sql('email')} is null "
            "then 'invalid_email'"
        )
    if "phone" in names:
        whens.append(
            f"when nullif(trim(phone), '') is not null and {crypto.normalise_phone_sql('phone')} is null "
            "then 'invalid_phone'"
        )
    for col in AMOUNT_COLUMNS:
        if col in names:
            whens.append(f"when \"{col}\" < 0 then 'negative_amount'")
    if "quantity" in names:
        whens.append("when quantity <= 0 then 'non_positive_quantity'")
    for col in source.event_time:
        whens.append(f"when \"{col}\" > timestamp '{now:%Y-%m-%d %H:%M:%S}' then 'future_timestamp'")
    if source.name in ("ecommerce_order_items", "pos_transactions"):
        whens.append("when product_id not in (select product_id from raw.products) then 'unknown_product'")
    duplicate = duplicate or (
        f'"{source.key}" in (select "{source.key}" from raw.{source.name}) '
        f'or row_number() over (partition by "{source.key}" order by _row) > 1'
    )
    whens.append(f"when {duplicate} then 'duplicate_key'")
    if source.name == "ecommerce_order_items":
        whens.append("when order_id not in (select order_id from raw.ecommerce_orders) then 'orphan_order'")
    return "case " + " ".join(whens) + " end"


# How far the re-submitted-order rule has judged raw (quarantine_duplicate_orders): the latest
# load time of the orders and lines it read, and the window it judged them with.
DUPLICATES_CHECKED_DDL = """
create table if not exists raw._duplicate_orders_checked (
    loaded_through timestamp, window_s integer, run_id varchar, checked_at timestamp
)"""


def _duplicates_checked_through(con, window_s: int) -> datetime | None:
    """Load time up to which orders and lines were judged with this window, or None (never, or
    with another window: everything is judged again)."""
    con.execute(DUPLICATES_CHECKED_DDL)
    rows = con.execute(
        "select max(loaded_through) from raw._duplicate_orders_checked where window_s = ?", [window_s]
    ).fetchall()
    return rows[0][0]


def quarantine_duplicate_orders(con, run_id: str, now: datetime | None = None, window_s: int = 60) -> int:
    """Move re-submitted orders (same account, amount and items within ``window_s`` seconds of an
    earlier order) and their lines from raw to quarantine with rule ``duplicate``.

    Runs after orders and their lines are loaded; idempotent (an order is only compared with
    earlier ones, so the original always stays).

    Only the orders within ``window_s`` of an order of the same account with the order or a line
    loaded since the last pass are judged (the whole table on the first pass, or after a change of
    ``window_s``): a pair is of one account and within the window, and a pair of rows judged
    before with the same baskets was judged with the same outcome. An
    order loaded late is still compared with that account's older orders, either way (it can be
    the earlier one of a pair), and a line loaded late changes its order's basket, so its
    account is judged again. At 1M customers the whole-table pass grouped every order line into
    baskets and joined every order in every daily run. "Since" is by the loader's clock
    (``_loaded_at`` after the latest one the last pass read), as for the raw gates' watermark: a
    load whose clock is not after the last pass's (a clock set back, or a fixed ``now`` passed
    to ``load_source`` twice) is not judged until a whole-table pass.

    An order at exactly midnight is taken to have no time part (a date-only export: DuckDB reads
    '2024-03-01' as 00:00:00, and many tools write a date as '2024-03-01 00:00:00'), so it is
    never called a re-submission, nor is a later order matched against it. Telling this from the
    value itself needs no extra column in every raw table and works on rows loaded before; the
    price is a real double submission whose first copy fell on 00:00:00 exactly, about one in
    86,400."""
    now = now or datetime.now().replace(microsecond=0)
    con.execute("begin transaction")
    try:
        since = _duplicates_checked_through(con, window_s)
        loaded_through = con.execute(
            "select greatest((select max(_loaded_at) from raw.ecommerce_orders), "
            "(select max(_loaded_at) from raw.ecommerce_order_items))"
        ).fetchall()[0][0]
        if since is None:
            judged = "select * from raw.ecommerce_orders"
        else:
            # After, not at: the first daily pass would otherwise judge the whole build's last
            # batch again (one load time for all of it).
            loaded_since = f"_loaded_at > {_sql_timestamp(since)}"
            # Of those accounts, only the orders within the window of a changed one (an order or
            # a line loaded since) can be in a pair not judged before. All of a changed account's
            # orders, with their baskets, took 2.1 s of a 7-day pass at 1M customers (the buyers
            # of the week and their whole history: 1.5M orders), these 0.4 s (85k orders). A semi
            # join: as `exists`, DuckDB grouped every order by (account, time) first (1.1 s).
            judged = f"""
                with changed as (
                    select account_id, ordered_at from raw.ecommerce_orders where {loaded_since}
                    union
                    select account_id, ordered_at from raw.ecommerce_orders where order_id in (
                        select order_id from raw.ecommerce_order_items where {loaded_since}
                    )
                )
                select o.* from raw.ecommerce_orders o
                semi join changed c
                  on c.account_id = o.account_id
                 and o.ordered_at >= c.ordered_at - interval {int(window_s)} second
                 and o.ordered_at <= c.ordered_at + interval {int(window_s)} second"""
        con.execute(
            f"""
            create or replace temp table _dup_orders as
            with judged as ({judged}),
            baskets as (
                select order_id, string_agg(product_id || 'x' || quantity, ',' order by product_id, quantity) as basket
                from raw.ecommerce_order_items
                where order_id in (select order_id from judged)
                group by order_id
            ),
            orders as (
                select o.order_id, o.account_id, o.amount, o.ordered_at, b.basket
                from judged o left join baskets b using (order_id)
            )
            select distinct later.order_id
            from orders later
            join orders earlier
              on later.account_id = earlier.account_id
             and later.amount = earlier.amount
             and later.basket is not distinct from earlier.basket
             and later.ordered_at >= earlier.ordered_at
             and later.ordered_at <= earlier.ordered_at + interval {int(window_s)} second
             and (later.ordered_at, later.order_id) > (earlier.ordered_at, earlier.order_id)
             and not (later.ordered_at = date_trunc('day', later.ordered_at)
                      or earlier.ordered_at = date_trunc('day', earlier.ordered_at))
            """
        )
        moved = con.execute("select count(*) from _dup_orders").fetchone()[0]
        if moved:
            for name, key_filter in (
                ("ecommerce_order_items", "order_id in (select order_id from _dup_orders)"),
                ("ecommerce_orders", "order_id in (select order_id from _dup_orders)"),
            ):
                src = SOURCES[name]
                con.execute(
                    f"""
                    insert into quality.quarantine
                    select ?, _source_file, "{src.key}", 'duplicate', {protect.raw_row_json_sql(src)}, ?, ?
                    from raw.{name} where {key_filter}
                    """,
                    [name, run_id, now],
                )
                # Keep each file's conservation equation true: rows move from loaded to quarantined.
                con.execute(
                    f"""
                    update raw._load_log l set rows_loaded = l.rows_loaded - d.n,
                                               rows_quarantined = l.rows_quarantined + d.n
                    from (select _source_file, count(*) as n from raw.{name} where {key_filter} group by 1) d
                    where l.source = ? and l.file = d._source_file
                    """,
                    [name],
                )
                con.execute(f"delete from raw.{name} where {key_filter}")
        if loaded_through is not None:
            con.execute(
                "insert into raw._duplicate_orders_checked values (?, ?, ?, ?)",
                [loaded_through, window_s, run_id, now],
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.execute("drop table if exists _dup_orders")
    return moved


def load_source(
    con,
    source_name: str,
    landing: Path,
    keyring: Keyring,
    run_id: str = "manual",
    now: datetime | None = None,
    scratch_root: Path | None = None,
) -> tuple[list[FileLoad], list[FileRejected]]:
    """Load every new file of one source, many files per statement (up to ``BATCH_BYTES``). A
    file that cannot be loaded is logged as rejected with its reason and returned among the
    errors; the others still load. The raw tables exist afterwards even when no file has landed."""
    ensure_tables(con)
    source = SOURCES[source_name]
    now = now or datetime.now().replace(microsecond=0)
    scratch = scratch_root or _scratch_root()
    paths = landing_files(landing, source_name)
    slots: list[FileLoad | None] = [None] * len(paths)
    errors: dict[int, FileRejected] = {}
    batch: list[tuple[int, _Item, ExitStack]] = []  # each file's stack holds its UTF-8 copy

    def reject(i: int, exc: FileRejected) -> None:
        load = FileLoad(source_name, str(paths[i].relative_to(landing)), exc.checksum, reason=exc.reason)
        record_rejected(con, load, run_id, now)
        slots[i], errors[i] = load, exc

    def flush() -> None:
        if not batch:
            return
        try:
            results = _load_items(con, source, [item for _, item, _ in batch], keyring, run_id, now)
        finally:
            for _, _, stack in batch:
                stack.close()
        for (i, _, _), result in zip(batch, results, strict=True):
            if isinstance(result, FileRejected):
                reject(i, result)
            else:
                slots[i] = result
        batch.clear()

    def before_check(checksum: str) -> None:
        # The same bytes twice in one batch: the first is logged before the second is looked
        # up, as when files loaded one at a time.
        if any(item.load.checksum == checksum for _, item, _ in batch):
            flush()

    try:
        for i, path in enumerate(paths):
            stack = ExitStack()
            try:
                item = _prepare(
                    con,
                    source,
                    path,
                    str(path.relative_to(landing)),
                    run_id,
                    now,
                    stack,
                    scratch,
                    before_check,
                )
            except FileRejected as exc:
                stack.close()
                reject(i, exc)
                continue
            if isinstance(item, FileLoad):
                stack.close()
                slots[i] = item
                continue
            if batch and (
                item.parquet
                or batch[0][1].batch_key != item.batch_key
                or len(batch) >= BATCH_FILES
                or sum(b.size for _, b, _ in batch) + item.size > BATCH_BYTES
            ):
                flush()
            batch.append((i, item, stack))
        flush()
    finally:
        for _, _, stack in batch:
            stack.close()
    return slots, [errors[i] for i in sorted(errors)]
