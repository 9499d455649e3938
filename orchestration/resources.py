"""Resources shared by every domain: the warehouse (DuckDB, or Spark for reads) and the writer pool."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb
from pydantic import Field

from c360.settings import get_settings
from c360.warehouse import close, connect

if TYPE_CHECKING:
    import pandas as pd

# DuckDB allows one writing process per database file: every asset that opens the warehouse
# runs in this pool, whose limit (1) is set in $DAGSTER_HOME/dagster.yaml by `c360`.
WAREHOUSE_POOL = "warehouse"

Params = Sequence[Any] | dict[str, Any] | None


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. ``path`` defaults to ``$C360_HOME/warehouse.duckdb``.

    Assets read their inputs (tables dbt builds) through ``reader()`` / ``read_frame()`` and
    write through ``connect()``: ``SparkWarehouseResource`` swaps where the reads come from
    without touching the assets. Input SQL must be portable (plain selects, ``group by all``,
    ``?`` or ``$name`` parameters), as the dbt models are through their dispatch macros."""

    path: str | None = None

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.path or get_settings().warehouse, read_only=read_only)
        try:
            yield con
        finally:
            close(con)

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """Something with ``execute(sql, params).df() / .fetchall() / .fetchone()`` over the
        dbt-built tables: here a read-only DuckDB connection."""
        with self.connect(read_only=True) as con:
            yield con

    def read_frame(self, sql: str, params: Params = None) -> pd.DataFrame:
        with self.reader() as con:
            return con.execute(sql, params).df()


class _SparkResult:
    """The part of a DuckDB result the assets use, over a Spark DataFrame."""

    def __init__(self, frame):
        self._frame = frame

    def df(self) -> pd.DataFrame:
        return self._frame.toPandas()

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self._frame.collect()]

    def fetchone(self) -> tuple | None:
        rows = self._frame.take(1)
        return tuple(rows[0]) if rows else None


class _SparkReader:
    def __init__(self, session):
        self._session = session

    def execute(self, sql: str, params: Params = None) -> _SparkResult:
        if isinstance(params, dict):
            # DuckDB names parameters $name, Spark :name.
            sql = re.sub(r"\$([A-Za-z_]\w*)", r":\1", sql)
            return _SparkResult(self._session.sql(sql, args=params))
        return _SparkResult(self._session.sql(sql, args=list(params) if params else None))


class SparkWarehouseResource(WarehouseResource):
    """Reads the dbt-built tables from Spark (the metastore the dbt `spark` target writes, same
    schema.table names); writes still go to the DuckDB file of ``path`` (``connect()``), so the
    Python assets' outputs (ml.*, marts.customer_segments) land in DuckDB and must be copied to
    the lake for dbt's Spark build (docs/SCALE_OUT.md). PySpark is imported on first use only:
    the platform's virtualenv has none (`pip install '.[spark]'`)."""

    master: str = Field(default="local[*]", description="spark.master (local[*], spark://..., yarn).")
    spark_home: str | None = Field(
        default=None,
        description="Warehouse directory and Derby metastore, as the dbt `spark` target uses "
        "(default $C360_SPARK_HOME or $C360_HOME/spark). Ignored when a session already exists.",
    )
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings.")

    def session(self):
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise RuntimeError(
                "SparkWarehouseResource needs PySpark and a Java 17+ runtime: pip install '.[spark]'"
            ) from exc
        import os

        home = self.spark_home or os.environ.get("C360_SPARK_HOME") or str(get_settings().home / "spark")
        builder = (
            SparkSession.builder.master(self.master)
            .appName("c360-warehouse")
            .enableHiveSupport()
            .config("spark.sql.warehouse.dir", f"{home}/warehouse")
            .config(
                "spark.hadoop.javax.jdo.option.ConnectionURL",
                f"jdbc:derby:;databaseName={home}/metastore_db;create=true",
            )
            # DuckDB's timestamp semantics, as in the dbt `spark` target.
            .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        )
        for key, value in self.conf.items():
            builder = builder.config(key, value)
        # getOrCreate: a session already running in this process (dbt-spark's) is reused.
        return builder.getOrCreate()

    @contextmanager
    def reader(self) -> Iterator[_SparkReader]:
        yield _SparkReader(self.session())
