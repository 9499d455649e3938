"""Re-encrypt every stored token under the active key (after ``c360 keys rotate``), so that
old keys can be retired: the ``*_enc`` columns of ``raw.*`` and the encrypted unparseable lines
in ``quality.quarantine``."""

from __future__ import annotations

import duckdb

from c360.contracts import SOURCES
from c360.privacy import crypto
from c360.privacy.keys import Keyring

QUARANTINE_PREFIX = "aesgcm:"


def encrypted_columns() -> list[tuple[str, str, str]]:
    """(raw table, token column, AAD SQL expression) for every encrypted contract column."""
    out = []
    for source in SOURCES.values():
        for col in source.columns:
            if col.encrypted:
                aad = f"'{source.name}|' || cast(\"{source.key}\" as varchar) || '|{col.name}'"
                out.append((f"raw.{source.name}", f"{col.name}_enc", aad))
    return out


def rewrap_quarantine(con: duckdb.DuckDBPyConnection, keyring: Keyring) -> int:
    active = f"{QUARANTINE_PREFIX}{crypto.TOKEN_VERSION}:{keyring.active_key_id}:"
    rows = con.execute(
        "select rowid, source, record_id, raw from quality.quarantine "
        "where starts_with(raw, ?) and not starts_with(raw, ?)",
        [QUARANTINE_PREFIX, active],
    ).fetchall()
    con.execute("begin transaction")
    try:
        for rowid, source, record_id, raw in rows:
            token = crypto.rewrap(raw.removeprefix(QUARANTINE_PREFIX), f"{source}|{record_id}", keyring)
            con.execute(
                "update quality.quarantine set raw = ? where rowid = ?", [QUARANTINE_PREFIX + token, rowid]
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return len(rows)


def rewrap_warehouse(
    con: duckdb.DuckDBPyConnection, keyring: Keyring, batch_size: int = 50_000
) -> dict[str, int]:
    """Tokens rewrapped per ``table.column`` (each column in its own transaction, in batches)."""
    existing = {
        f"{s}.{t}"
        for s, t in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    }
    counts: dict[str, int] = {}
    for table, column, aad in encrypted_columns():
        if table in existing:
            counts[f"{table}.{column}"] = crypto.rotate_table(con, table, column, aad, keyring, batch_size)
    if "quality.quarantine" in existing:
        counts["quality.quarantine.raw"] = rewrap_quarantine(con, keyring)
    return counts


def remaining_key_ids(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Tokens per key id still stored (to see when an old key can be retired)."""
    counts: dict[str, int] = {}
    for table, column, _ in encrypted_columns():
        for key_id, n in con.execute(
            f"select split_part({column}, ':', 2), count(*) from {table} where {column} is not null group by 1"
        ).fetchall():
            counts[key_id] = counts.get(key_id, 0) + n
    for key_id, n in con.execute(
        "select split_part(raw, ':', 3), count(*) from quality.quarantine where starts_with(raw, 'aesgcm:') group by 1"
    ).fetchall():
        counts[key_id] = counts.get(key_id, 0) + n
    return counts
