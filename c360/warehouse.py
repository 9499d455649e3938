"""DuckDB connections to the warehouse, configured from the environment."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from c360.settings import Settings, get_settings

SCHEMAS = ("raw", "staging", "intermediate", "marts", "ml", "quality", "activation", "privacy")


def connect(path: Path | str | None = None, read_only: bool = False, settings: Settings | None = None):
    settings = settings or get_settings()
    path = Path(path or settings.warehouse)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str] = {}
    if settings.duckdb_threads:
        config["threads"] = str(settings.duckdb_threads)
    if settings.duckdb_memory_limit:
        config["memory_limit"] = settings.duckdb_memory_limit
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    if not read_only:
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
    return con


@contextmanager
def warehouse(read_only: bool = False, settings: Settings | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(read_only=read_only, settings=settings)
    try:
        yield con
    finally:
        con.close()


def table_exists(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
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
