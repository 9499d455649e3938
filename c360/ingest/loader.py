"""Landing files -> ``raw.<source>`` tables, one file per transaction.

Each file is checked against the landing contract (``c360.contracts``), parsed by DuckDB with
typed columns (malformed lines land in a reject table with their line numbers), then every
row is judged by the row-level rules in SQL. Valid rows go to ``raw.<source>`` with their
sensitive values pseudonymised, encrypted and masked; the others go to
``quality.quarantine`` with the rule they broke. ``raw._load_log`` records each file once,
by checksum, with rows in / loaded / quarantined, so that rows are conserved and checkable.

Plaintext sensitive values only ever live in TEMP tables (memory), never in the database file.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from c360.contracts import SOURCES, Column, Source
from c360.ingest import protect
from c360.privacy import crypto, suppression
from c360.privacy.keys import Keyring

LANDING_SUFFIXES = (".csv", ".parquet")
# A column whose values fail to parse on more than this share of lines was retyped upstream:
# that is schema drift, not a few bad rows.
RETYPED_SHARE = 0.5


class SchemaDriftError(ValueError):
    """A landing file does not match its source's contract; nothing was loaded from it."""

    def __init__(self, file: Path, column: str, problem: str):
        self.file, self.column, self.problem = file, column, problem
        super().__init__(f"{file}: column '{column}' {problem}. Nothing was loaded from this file.")


@dataclass
class FileLoad:
    source: str
    file: str
    checksum: str
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    extra_columns: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def conserved(self) -> bool:
        return self.rows_in == self.rows_loaded + self.rows_quarantined


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for schema in ("raw", "quality"):
        con.execute(f"create schema if not exists {schema}")
    con.execute(
        """
        create table if not exists raw._load_log (
            source varchar, file varchar, checksum varchar, rows_in bigint, rows_loaded bigint,
            rows_quarantined bigint, extra_columns varchar, run_id varchar, loaded_at timestamp
        )"""
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


def already_loaded(con, source: str, checksum: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from raw._load_log where source = ? and checksum = ?", [source, checksum]
        ).fetchone()[0]
    )


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _header(path: Path) -> list[str]:
    if path.suffix.lower() == ".parquet":
        return [r[0] for r in duckdb.sql(f"describe select * from read_parquet({_sql_str(str(path))})").fetchall()]
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def _read_into_batch(con, source: Source, path: Path, header: list[str]) -> int:
    """Parse the file into TEMP table ``_batch`` (with ``_row``, its order in the file).

    Returns the number of lines DuckDB rejected (kept in TEMP table ``_rejects``)."""
    con.execute("drop table if exists _batch")
    con.execute("drop table if exists _rejects")
    con.execute("drop table if exists _reject_scans")
    known = {c.name: c for c in source.columns}
    if path.suffix.lower() == ".parquet":
        casts = []
        for name in source.column_names:
            col = known[name]
            try:
                con.execute(f'select cast("{name}" as {col.type}) from read_parquet({_sql_str(str(path))}) limit 0')
                con.execute(f'select count(cast("{name}" as {col.type})) from read_parquet({_sql_str(str(path))})')
            except duckdb.Error as exc:
                raise SchemaDriftError(path, name, f"cannot be read as {col.type} ({exc})") from exc
            casts.append(f'cast("{name}" as {col.type}) as "{name}"')
        con.execute(
            f"create temp table _batch as select row_number() over () as _row, {', '.join(casts)} "
            f"from read_parquet({_sql_str(str(path))})"
        )
        con.execute("create temp table _rejects (line bigint, column_name varchar, error_type varchar, csv_line varchar)")
        return 0

    types = {name: (known[name].type if name in known else "VARCHAR") for name in header}
    columns = "{" + ", ".join(f"{_sql_str(n)}: {_sql_str(t)}" for n, t in types.items()) + "}"
    select = ", ".join(f'"{name}"' for name in source.column_names)
    con.execute(
        f"""
        create temp table _batch as
        select row_number() over () as _row, {select}
        from read_csv({_sql_str(str(path))}, header = true, columns = {columns}, auto_detect = false,
                      delim = ',', quote = '"', escape = '"', strict_mode = true,
                      store_rejects = true, rejects_table = '_rejects', rejects_scan = '_reject_scans')
        """
    )
    return con.execute("select count(distinct line) from _rejects").fetchone()[0]


def _check_retyped(con, path: Path, parsed: int) -> None:
    worst = con.execute(
        "select column_name, count(distinct line) from _rejects where error_type = 'CAST' "
        "group by 1 order by 2 desc limit 1"
    ).fetchone()
    # The message names the column only: a rejected line may hold personal data.
    if worst and worst[1] > RETYPED_SHARE * (parsed + worst[1]) and worst[1] >= 3:
        raise SchemaDriftError(path, worst[0], f"has values of the wrong type on {worst[1]} lines (retyped upstream?)")


def load_file(
    con: duckdb.DuckDBPyConnection,
    source_name: str,
    path: Path,
    keyring: Keyring,
    run_id: str = "manual",
    now: datetime | None = None,
    landing_root: Path | None = None,
) -> FileLoad:
    """Load one landing file. Idempotent: a file whose checksum was loaded before is skipped."""
    source = SOURCES[source_name]
    now = now or datetime.now().replace(microsecond=0)
    rel = str(path.relative_to(landing_root)) if landing_root else path.name
    result = FileLoad(source=source_name, file=rel, checksum=file_checksum(path))
    ensure_tables(con)
    if already_loaded(con, source_name, result.checksum):
        result.skipped = True
        return result

    header = _header(path)
    for name in source.column_names:
        if name not in header:
            raise SchemaDriftError(path, name, "is missing from the header")
    result.extra_columns = [h for h in header if h not in source.column_names]

    rejected = _read_into_batch(con, source, path, header)
    parsed = con.execute("select count(*) from _batch").fetchone()[0]
    _check_retyped(con, path, parsed)
    result.rows_in = parsed + rejected
    # Rows of erased people are dropped unseen and counted as quarantined (rule "erased").
    erased = suppression.drop_suppressed(con, source, keyring)
    parsed, rejected = parsed - erased.rows, rejected - erased.lines

    # Window functions (duplicate keys) are not allowed in UPDATE, so judge into a new table.
    con.execute(f"create or replace temp table _judged as select *, {rule_expression(source, now)} as _rule from _batch")
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
        con.execute(
            "insert into raw._load_log values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                source_name, rel, result.checksum, result.rows_in, result.rows_loaded,
                result.rows_quarantined, ",".join(result.extra_columns) or None, run_id, now,
            ],
        )
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
            whens.append(f'when "{col}" < 0 then \'negative_amount\'')
    if "quantity" in names:
        whens.append("when quantity <= 0 then 'non_positive_quantity'")
    for col in source.event_time:
        whens.append(f"when \"{col}\" > timestamp '{now:%Y-%m-%d %H:%M:%S}' then 'future_timestamp'")
    if source.name in ("ecommerce_order_items", "pos_transactions"):
        whens.append(
            "when product_id not in (select product_id from raw.products) then 'unknown_product'"
        )
    whens.append(
        f'when "{source.key}" in (select "{source.key}" from raw.{source.name}) '
        f'or row_number() over (partition by "{source.key}" order by _row) > 1 then \'duplicate_key\''
    )
    if source.name == "ecommerce_order_items":
        whens.append("when order_id not in (select order_id from raw.ecommerce_orders) then 'orphan_order'")
    return "case " + " ".join(whens) + " end"


def quarantine_duplicate_orders(con, run_id: str, now: datetime | None = None, window_s: int = 60) -> int:
    """Move re-submitted orders (same account, amount and items within ``window_s`` seconds of an
    earlier order) and their lines from raw to quarantine with rule ``duplicate``.

    Runs after orders and their lines are loaded; idempotent (an order is only compared with
    earlier ones, so the original always stays)."""
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
    con, source_name: str, landing: Path, keyring: Keyring, run_id: str = "manual", now: datetime | None = None
) -> tuple[list[FileLoad], list[SchemaDriftError]]:
    """Load every new file of one source. A file that breaks the contract is skipped (and
    reported); the others still load."""
    loads: list[FileLoad] = []
    errors: list[SchemaDriftError] = []
    for path in landing_files(landing, source_name):
        try:
            loads.append(load_file(con, source_name, path, keyring, run_id, now, landing_root=landing))
        except SchemaDriftError as exc:
            errors.append(exc)
    return loads, errors


def column_doc(col: Column) -> str:
    return f"{col.name} ({col.type}{', required' if col.required else ''}): {col.description}"
