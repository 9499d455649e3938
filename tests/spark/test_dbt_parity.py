"""The dbt project builds unchanged on Apache Spark (dbt-spark, session method, local[*]) and gives
the same marts as on DuckDB: customer_360, customer_rfm and identity_map compared row by row.

Data: the session's demo platform (tests/conftest.py, 400 generated customers, every planted
identity case, ML tables written). Spark in local mode spends its time in per-query overhead
(planning, task launch), not in rows, so 10k customers would cost minutes more on two cores and
cover no SQL path the 400 do not; the benchmarks (docs/SCALE_OUT.md) cover size."""

import datetime as dt
import decimal
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.spark
DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"

pyspark = pytest.importorskip("pyspark", reason="the spark extra is not installed (make test-spark)")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs a Java 17+ runtime (java on PATH or JAVA_HOME)", allow_module_level=True)

# Tables the dbt project reads but does not build: written by ingestion and by Python assets.
INPUT_SCHEMAS = ("raw", "ml")
PYTHON_MARTS = ("customer_segments",)


def export_inputs(warehouse: Path, out: Path) -> dict[str, Path]:
    """Write every dbt input table of a DuckDB warehouse to Parquet, one folder per table;
    returns {"schema.table": folder}."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and (table_schema in ? or (table_schema = 'marts' "
            "and table_name in ?)) order by 1, 2",
            [list(INPUT_SCHEMAS), list(PYTHON_MARTS)],
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


MARTS = {
    "customer_360": ("customer_id",),
    "customer_rfm": ("customer_id",),
    "identity_map": ("source", "source_record_id"),
}
# By path: the bare name customer_360 is also the project's name and would select every model.
SELECTION = ["+path:models/marts/customer_360.sql", "+customer_rfm", "+identity_map"]


def _dbt(target_path, *args: str) -> None:
    """dbt in this process: dbt-spark's session method then reuses the session registered below.
    Own target path: the shared dbt_project/target (manifest, partial parse) stays untouched."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            *args,
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(target_path),
            "--quiet",
        ]
    )
    if not result.success:
        raise AssertionError(f"dbt {' '.join(args)} failed: {result.exception or result.result}")


def _dbt_duckdb(target_path, *args: str) -> None:
    """dbt on DuckDB in a child process: dbt-duckdb keeps its connection open in-process, which
    would stop this process from opening the file read-only afterwards."""
    dbt = Path(sys.executable).parent / "dbt"
    command = [
        str(dbt),
        *args,
        "--target",
        "duckdb",
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(target_path),
        "--quiet",
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    assert done.returncode == 0, (
        f"dbt {' '.join(args)} on DuckDB failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
    )


def _rows(columns: list[str], records, key: tuple[str, ...]) -> dict[tuple, dict]:
    rows = [dict(zip(columns, record)) for record in records]
    by_key = {tuple(row[k] for k in key): row for row in rows}
    assert len(by_key) == len(rows), f"duplicate keys {key}"
    return by_key


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (float, decimal.Decimal)) or isinstance(b, (float, decimal.Decimal)):
        # Columns rounded to cents may differ by one cent on exact halves: DuckDB rounds the
        # binary double (304.025 is 304.02499...), Spark rounds its decimal form (HALF_UP).
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0100001)
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return a == b


@pytest.fixture(scope="module")
def both_builds(request, tmp_path_factory):
    """(duckdb connection, spark session) after building the marts on each from the same inputs:
    the demo platform's warehouse, or any built one named by C360_PARITY_WAREHOUSE (e.g. 10k)."""
    source = os.environ.get("C360_PARITY_WAREHOUSE")
    if not source:
        source = request.getfixturevalue("demo_home") / "warehouse.duckdb"
    work = tmp_path_factory.mktemp("spark_parity")
    warehouse = work / "warehouse.duckdb"
    shutil.copy(source, warehouse)
    saved = {k: os.environ.get(k) for k in ("C360_WAREHOUSE", "C360_SPARK_HOME", "C360_SPARK_MASTER")}
    os.environ["C360_WAREHOUSE"] = str(warehouse)
    os.environ["C360_SPARK_HOME"] = str(work / "spark")
    os.environ.setdefault("C360_SPARK_MASTER", "local[2]")
    try:
        # Rebuild on DuckDB now that every Python-written input exists (the platform's run built
        # some marts before the ML tables they read), so both engines see the same inputs.
        _dbt_duckdb(work / "target_duckdb", "build", "--select", *SELECTION)
        spark = spark_session(work / "spark")
        register_tables(spark, export_inputs(warehouse, work / "parquet"))
        # Generic column tests already ran on DuckDB and the comparison below covers their columns;
        # the singular tests (convergence, one row per record, revenue) and unit tests run here.
        _dbt(
            work / "target_spark",
            "build",
            "--target",
            "spark",
            "--select",
            *SELECTION,
            "--exclude",
            "test_type:generic",
        )
        con = duckdb.connect(str(warehouse), read_only=True)
        yield con, spark
        con.close()
        spark.stop()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.parametrize("mart", list(MARTS))
def test_spark_build_matches_duckdb_row_by_row(both_builds, mart):
    con, spark = both_builds
    key = MARTS[mart]
    relation = con.sql(f"select * from marts.{mart}")
    expected = _rows(relation.columns, relation.fetchall(), key)
    frame = spark.table(f"marts.{mart}")
    actual = _rows(frame.columns, [tuple(row) for row in frame.collect()], key)

    assert sorted(frame.columns) == sorted(relation.columns)
    assert expected, f"marts.{mart} is empty: the comparison would prove nothing"
    assert actual.keys() == expected.keys(), (
        f"{mart}: {len(expected.keys() - actual.keys())} rows only on DuckDB, "
        f"{len(actual.keys() - expected.keys())} only on Spark"
    )
    differences = [
        (k, column, expected[k][column], actual[k][column])
        for k in expected
        for column in relation.columns
        if not _same(expected[k][column], actual[k][column])
    ]
    assert not differences, f"{mart}: {len(differences)} values differ, e.g. {differences[:5]}"


def test_spark_jaro_winkler_matches_duckdb(both_builds):
    """The Spark implementation of the fuzzy-name similarity agrees with DuckDB's built-in."""
    con, spark = both_builds
    pairs = [
        ("martha", "marhta"),
        ("dixon", "dicksonx"),
        ("wei zhang", "wei zhnag"),
        ("li na", "li nan"),
        ("a", "b"),
        ("ab", "ba"),
        ("", "x"),
        ("jones", "johnson"),
        ("wang fang", "fang wang"),
    ]
    values = ", ".join(f"('{a}', '{b}')" for a, b in pairs)
    from jinja2 import Template  # the macro body is plain SQL once a and b are substituted

    macro = (DBT_PROJECT / "macros" / "cross_engine.sql").read_text()
    body = macro.split("{% macro default__jaro_winkler(a, b) -%}")[1].split("{%- endmacro %}")[0]
    spark_sql = Template(body).render(a="a", b="b")
    expected = con.sql(f"select jaro_winkler_similarity(a, b) from (values {values}) t(a, b)").fetchall()
    actual = spark.sql(f"select {spark_sql} from values {values} as t(a, b)").collect()
    for (a, b), (want,), (got,) in zip(pairs, expected, actual):
        assert math.isclose(want, got, abs_tol=1e-12), (a, b, want, got)
