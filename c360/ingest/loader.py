"""Landing files -> ``raw.<source>`` tables, one file per transaction.

Each file is checked against the landing contract (``c360.contracts``), parsed by DuckDB with
typed columns (malformed lines land in a reject table with their line numbers), then every
row is judged by the row-level rules in SQL. Valid rows go to ``raw.<source>`` with their
sensitive values pseudonymised, encrypted and masked; the others go to
``quality.quarantine`` with the rule they broke. ``raw._load_log`` records each file once,
by checksum, with rows in / loaded / quarantined, so that rows are conserved and checkable.

Files come as they are exported: a UTF-8 byte-order mark, GB18030 or Windows-1252 text, stray
NUL bytes and optional columns left out are all read (``c360.ingest.encoding``). A file that
cannot be read or breaks the contract is rejected: ``load_source`` records it in the load log
with its reason (status ``rejected``, no rows) and goes on with the next file; it is not tried
again until its bytes change. A 0-byte or header-only file is recorded as ``empty``.

Plaintext sensitive values only ever live in TEMP tables (memory), never in the database file,
and no error or reason quotes a value from a file: they name the file, a column or an offset.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

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


def _read_into_batch(con, source: Source, path: Path, header: list[str], original: Path | None = None) -> int:
    """Parse the file into TEMP table ``_batch`` (with ``_row``, its order in the file).

    Returns the number of lines DuckDB rejected (kept in TEMP table ``_rejects``). ``original``
    is the landing file when ``path`` is its UTF-8 copy (errors name the landing file)."""
    original = original or path
    con.execute("drop table if exists _batch")
    con.execute("drop table if exists _rejects")
    con.execute("drop table if exists _reject_scans")
    known = {c.name: c for c in source.columns}
    select = _select_contract(source, header)
    if path.suffix.lower() == ".parquet":
        casts = []
        for name in source.column_names:
            if name not in header:
                casts.append(f'cast(null as {known[name].type}) as "{name}"')
                continue
            col = known[name]
            try:
                con.execute(
                    f'select cast("{name}" as {col.type}) from read_parquet({_sql_str(str(path))}) limit 0'
                )
                con.execute(
                    f'select count(cast("{name}" as {col.type})) from read_parquet({_sql_str(str(path))})'
                )
            except duckdb.Error as exc:
                # DuckDB's message may quote the value that failed: name the column only.
                raise SchemaDriftError(original, name, f"cannot be read as {col.type}") from exc
            casts.append(f'cast("{name}" as {col.type}) as "{name}"')
        con.execute(
            f"create temp table _batch as select row_number() over () as _row, {', '.join(casts)} "
            f"from read_parquet({_sql_str(str(path))})"
        )
        con.execute(
            "create temp table _rejects (line bigint, column_name varchar, error_type varchar, csv_line varchar)"
        )
        return 0

    columns = (
        "{"
        + ", ".join(
            f"{_sql_str(n)}: {_sql_str(known[n].type if n in known else 'VARCHAR')}"
            for n in _read_names(header)
        )
        + "}"
    )
    try:
        con.execute(
            f"""
            create temp table _batch as
            select row_number() over () as _row, {select}
            from read_csv({_sql_str(str(path))}, header = true, columns = {columns}, auto_detect = false,
                          delim = ',', quote = '"', escape = '"', strict_mode = true,
                          store_rejects = true, rejects_table = '_rejects', rejects_scan = '_reject_scans')
            """
        )
    except duckdb.Error as exc:
        # DuckDB's CSV errors quote the offending line: keep the line number only.
        line = re.search(r"[Ll]ine:? ?(\d+)", str(exc))
        where = f" near line {line.group(1)}" if line else ""
        raise FileRejected(original, f"cannot be parsed as CSV{where} ({type(exc).__name__})") from exc
    return con.execute("select count(distinct line) from _rejects").fetchone()[0]


def _check_retyped(con, path: Path, parsed: int) -> None:
    worst = con.execute(
        "select column_name, count(distinct line) from _rejects where error_type = 'CAST' "
        "group by 1 order by 2 desc limit 1"
    ).fetchone()
    # The message names the column only: a rejected line may hold personal data.
    if worst and worst[1] > RETYPED_SHARE * (parsed + worst[1]) and worst[1] >= 3:
        raise SchemaDriftError(
            path, worst[0], f"has values of the wrong type on {worst[1]} lines (retyped upstream?)"
        )


def _log(con, load: FileLoad, run_id: str, now: datetime) -> None:
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
    parquet = path.suffix.lower() == ".parquet"
    try:
        scan = None if parquet else encoding.scan_bytes(path)
        checksum = file_checksum(path) if parquet else scan.checksum
    except OSError as exc:
        raise FileRejected(path, f"cannot be read ({exc.strerror or type(exc).__name__})") from exc
    try:
        return _load_checked(con, source, path, checksum, scan, keyring, run_id, now, rel, scratch_root)
    except FileRejected as exc:
        exc.checksum = checksum
        raise


def _load_checked(
    con, source: Source, path, checksum, scan, keyring, run_id, now, rel, scratch_root
) -> FileLoad:
    source_name, parquet = source.name, scan is None
    result = FileLoad(source=source_name, file=rel, checksum=checksum)
    ensure_tables(con)
    if seen := logged(con, source_name, checksum):
        result.skipped = True
        result.status, result.reason = seen
        return result
    if path.stat().st_size == 0:
        result.status, result.reason = EMPTY, "0 bytes"
        _log(con, result, run_id, now)
        return result

    try:
        if parquet:
            header = _header(path)
            result.absent_columns = _check_header(path, source, header)
            rejected = _read_into_batch(con, source, path, header)
        else:
            with encoding.readable_csv(path, scan, scratch_root or _scratch_root()) as readable:
                result.encoding, result.nul_bytes_removed = readable.encoding, readable.nul_bytes_removed
                header = _header(readable.path)
                result.absent_columns = _check_header(path, source, header)
                rejected = _read_into_batch(con, source, readable.path, header, original=path)
    except encoding.UndecodableFile as exc:
        raise FileRejected(path, exc.problem) from None
    result.extra_columns = [h for h in dict.fromkeys(header) if h and h not in source.column_names]
    parsed = con.execute("select count(*) from _batch").fetchone()[0]
    _check_retyped(con, path, parsed)
    result.rows_in = parsed + rejected
    if result.rows_in == 0:
        result.status, result.reason = EMPTY, "header only, no rows"
    # Rows of erased people are dropped unseen and counted as quarantined (rule "erased").
    erased = suppression.drop_suppressed(con, source, keyring)
    parsed, rejected = parsed - erased.rows, rejected - erased.lines

    # Window functions (duplicate keys) are not allowed in UPDATE, so judge into a new table.
    con.execute(
        f"create or replace temp table _judged as select *, {rule_expression(source, now)} as _rule from _batch"
    )
    con.execute("drop table _batch")
    con.execute("alter table _judged rename to _batch")
    protect.add_protected_columns(con, source, keyring)

    con.execute("begin transaction")
    try:
        con.execute(
            """
            insert into quality.quarantine
            select ?, ?, 'line:' || line, 'malformed_line', raw, ?, ?
            from _rejects_protected order by line
            """,
            [source_name, rel, run_id, now],
        )
        con.execute(
            f"""
            insert into quality.quarantine
            select ?, ?, coalesce(cast("{source.key}" as varchar), 'row:' || _row), _rule,
                   {protect.row_json_sql(source)}, ?, ?
            from _batch b join _protected p using (_row) where b._rule is not null order by b._row
            """,
            [source_name, rel, run_id, now],
        )
        con.execute(
            "insert into quality.quarantine select ?, ?, null, 'erased', null, ?, ? from range(?)",
            [source_name, rel, run_id, now, erased.total],
        )
        quarantined_rows = con.execute("select count(*) from _batch where _rule is not null").fetchone()[0]
        select = ", ".join(protect.raw_select_sql(source))
        con.execute(
            f"insert into raw.{source_name} by name select {select}, ? as _source_file, ? as _loaded_at, "
            f"? as _run_id from _batch b join _protected p using (_row) where b._rule is null order by b._row",
            [rel, now, run_id],
        )
        result.rows_loaded = parsed - quarantined_rows
        result.rows_quarantined = quarantined_rows + rejected + erased.total
        _log(con, result, run_id, now)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        for tmp in ("_batch", "_rejects", "_reject_scans", "_protected", "_rejects_protected"):
            con.execute(f"drop table if exists {tmp}")
    return result


# --- row-level rules --------------------------------------------------------------------------

AMOUNT_COLUMNS = ("amount", "unit_price", "price")


def rule_expression(source: Source, now: datetime) -> str:
    """One SQL CASE giving the first rule a row breaks, or NULL. Order matters: a row is
    reported for its first problem only."""
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
    whens.append(
        f'when "{source.key}" in (select "{source.key}" from raw.{source.name}) '
        f"or row_number() over (partition by \"{source.key}\" order by _row) > 1 then 'duplicate_key'"
    )
    if source.name == "ecommerce_order_items":
        whens.append("when order_id not in (select order_id from raw.ecommerce_orders) then 'orphan_order'")
    return "case " + " ".join(whens) + " end"


def quarantine_duplicate_orders(con, run_id: str, now: datetime | None = None, window_s: int = 60) -> int:
    """Move re-submitted orders (same account, amount and items within ``window_s`` seconds of an
    earlier order) and their lines from raw to quarantine with rule ``duplicate``.

    Runs after orders and their lines are loaded; idempotent (an order is only compared with
    earlier ones, so the original always stays).

    An order at exactly midnight is taken to have no time part (a date-only export: DuckDB reads
    '2024-03-01' as 00:00:00, and many tools write a date as '2024-03-01 00:00:00'), so it is
    never called a re-submission, nor is a later order matched against it. Telling this from the
    value itself needs no extra column in every raw table and works on rows loaded before; the
    price is a real double submission whose first copy fell on 00:00:00 exactly, about one in
    86,400."""
    now = now or datetime.now().replace(microsecond=0)
    con.execute("begin transaction")
    try:
        con.execute(
            f"""
            create or replace temp table _dup_orders as
            with baskets as (
                select order_id, string_agg(product_id || 'x' || quantity, ',' order by product_id, quantity) as basket
                from raw.ecommerce_order_items group by order_id
            ),
            orders as (
                select o.order_id, o.account_id, o.amount, o.ordered_at, b.basket
                from raw.ecommerce_orders o left join baskets b using (order_id)
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
    """Load every new file of one source. A file that cannot be loaded is logged as rejected
    with its reason and returned among the errors; the others still load. The raw tables exist
    afterwards even when no file has landed."""
    ensure_tables(con)
    loads: list[FileLoad] = []
    errors: list[FileRejected] = []
    for path in landing_files(landing, source_name):
        try:
            loads.append(load_file(con, source_name, path, keyring, run_id, now, landing, scratch_root))
        except FileRejected as exc:
            load = FileLoad(source_name, str(path.relative_to(landing)), exc.checksum, reason=exc.reason)
            record_rejected(con, load, run_id, now)
            loads.append(load)
            errors.append(exc)
    return loads, errors
