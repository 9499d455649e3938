"""Spark fixtures shared by the tests of this folder: one SparkSession per test session (starting
one costs about 100 s on the loaded CI machine) and one build of the whole dbt project on Spark
and on DuckDB from the same inputs (`both_builds`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"

# Tables the dbt project reads but does not build: written by ingestion and by Python assets.
INPUT_SCHEMAS = ("raw", "ml")
PYTHON_MARTS = ("customer_segments",)
# Written by the audience exports (c360.campaigns), read by the campaign models and their unit
# tests (which take a source's columns from the database).
PYTHON_ACTIVATION = ("campaign_assignments",)
# Models that do not build on Spark yet (docs/SCALE_OUT.md, section 4), excluded from the build:
# none; a model added here must say why in the docs.
NOT_ON_SPARK_YET: tuple[str, ...] = ()


def export_inputs(warehouse: Path, out: Path) -> dict[str, Path]:
    """Write every dbt input table of a DuckDB warehouse to Parquet, one folder per table;
    returns {"schema.table": folder}."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and (table_schema in ? or (table_schema = 'marts' "
            "and table_name in ?) or (table_schema = 'activation' and table_name in ?)) order by 1, 2",
            [list(INPUT_SCHEMAS), list(PYTHON_MARTS), list(PYTHON_ACTIVATION)],
        ).fetchall()
        tables = {}
        for schema, table in rows:
            folder = out / schema / table
            folder.mkdir(parents=True)
            con.execute(
                f"copy (select * from {schema}.{table}) to '{folder}/part-0.parquet' (format parquet)"
            )
            tables[f"{schema}.{table}"] = folder
        return tables
    finally:
        con.close()


def spark_session(spark_home: Path):
    """The session dbt-spark's `session` method will reuse (getOrCreate), configured as the
    `spark` target of profiles.yml."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(os.environ.get("C360_SPARK_MASTER", "local[2]"))
        .appName("c360-dbt-parity")
        .enableHiveSupport()
        .config("spark.sql.warehouse.dir", str(spark_home / "warehouse"))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={spark_home}/metastore_db;create=true",
        )
        .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        # Derby's log would land in the working directory (the repository).
        .config("spark.driver.extraJavaOptions", f"-Dderby.stream.error.file={spark_home}/derby.log")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def register_tables(spark, tables: dict[str, Path]) -> None:
    for name, folder in tables.items():
        schema = name.split(".")[0]
        spark.sql(f"create database if not exists {schema}")
        spark.sql(f"drop table if exists {name}")
        spark.sql(f"create table {name} using parquet location '{folder}'")


def _dbt_args(target_path, *args: str) -> list[str]:
    """dbt arguments for this project with its own target path (the shared dbt_project/target,
    its manifest and partial parse, stays untouched)."""
    return [
        *args,
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(target_path),
        "--quiet",
    ]


def _dbt(target_path, *args: str) -> None:
    """dbt in this process: dbt-spark's session method then reuses the session registered below.
    Own target path: the shared dbt_project/target (manifest, partial parse) stays untouched."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(_dbt_args(target_path, *args))
    if not result.success:
        failed = [
            f"{r.node.name}: {str(r.message)[:800]}"
            for r in (result.result or [])
            if str(getattr(r, "status", "")).lower() in ("error", "fail")
        ]
        raise AssertionError(f"dbt {' '.join(args)} failed: {result.exception or failed or result.result}")


def _dbt_duckdb(target_path, *args: str) -> None:
    """dbt on DuckDB in a child process: dbt-duckdb keeps its connection open in-process, which
    would stop this process from opening the file read-only afterwards."""
    dbt = Path(sys.executable).parent / "dbt"
    command = [str(dbt), *_dbt_args(target_path, *args, "--target", "duckdb")]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    assert done.returncode == 0, (
        f"dbt {' '.join(args)} on DuckDB failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
    )


@pytest.fixture(scope="session")
def spark_work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spark_parity")


@pytest.fixture(scope="session")
def spark(spark_work):
    """One local SparkSession for every Spark test (also the one dbt-spark reuses)."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed (make test-spark)")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs a Java 17+ runtime (java on PATH or JAVA_HOME)")
    saved = {k: os.environ.get(k) for k in ("C360_SPARK_HOME", "C360_SPARK_MASTER")}
    os.environ["C360_SPARK_HOME"] = str(spark_work / "spark")
    os.environ.setdefault("C360_SPARK_MASTER", "local[2]")
    session = spark_session(spark_work / "spark")
    yield session
    session.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def both_builds(request, spark, spark_work):
    """(duckdb warehouse path, spark session) after building the whole dbt project on each from
    the same inputs: the demo platform's warehouse, or any built one named by
    C360_PARITY_WAREHOUSE (e.g. 10k)."""
    source = os.environ.get("C360_PARITY_WAREHOUSE")
    if not source:
        source = request.getfixturevalue("demo_home") / "warehouse.duckdb"
    warehouse = spark_work / "warehouse.duckdb"
    shutil.copy(source, warehouse)
    saved = os.environ.get("C360_WAREHOUSE")
    os.environ["C360_WAREHOUSE"] = str(warehouse)
    try:
        # Rebuild on DuckDB now that every Python-written input exists (the platform's run built
        # some marts before the ML tables they read), so both engines see the same inputs.
        _dbt_duckdb(spark_work / "target_duckdb", "run")
        register_tables(spark, export_inputs(warehouse, spark_work / "parquet"))
        # The whole project, unchanged. Generic column tests already ran on DuckDB and the
        # comparison covers their columns; the singular tests (convergence, one row per record,
        # revenue) and unit tests run here.
        _dbt(
            spark_work / "target_spark",
            "build",
            "--target",
            "spark",
            "--exclude",
            "test_type:generic",
            # Unit tests of DuckDB's incremental state (Spark rebuilds it whole) and of its
            # identity labels (a Python model, which dbt runs on DuckDB only).
            "tag:incremental_state",
            "tag:duckdb_only",
            *NOT_ON_SPARK_YET,
        )
        yield warehouse, spark
    finally:
        if saved is None:
            os.environ.pop("C360_WAREHOUSE", None)
        else:
            os.environ["C360_WAREHOUSE"] = saved
