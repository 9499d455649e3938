"""Resources shared by every domain: the DuckDB warehouse and the writer pool."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import dagster as dg
import duckdb

from c360.settings import get_settings
from c360.warehouse import connect

# DuckDB allows one writing process per database file: every asset that opens the warehouse
# runs in this pool, whose limit (1) is set in $DAGSTER_HOME/dagster.yaml by `c360`.
WAREHOUSE_POOL = "warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. ``path`` defaults to ``$C360_HOME/warehouse.duckdb``."""

    path: str | None = None

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.path or get_settings().warehouse, read_only=read_only)
        try:
            yield con
        finally:
            con.close()
