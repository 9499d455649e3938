"""The ML assets' input queries give the same frame through WarehouseResource (DuckDB) and
SparkWarehouseResource (the Spark tables the parity build wrote, same schema.table names), so the
assets run on either target. Uses the session's Spark build (conftest.py, both_builds)."""

import math

import pandas as pd
import pytest

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark", reason="the spark extra is not installed (make test-spark)")


def _queries(as_of) -> dict[str, tuple[str, object]]:
    """name -> (sql, params): what the ML assets read, imported from them (pytest only: with
    pyspark installed, orchestration.definitions must not be imported under `python -c`)."""
    from orchestration.ml import churn, recommendations

    return {
        "churn_features": (f"select * from {churn.FEATURES_TABLE} order by as_of_date, customer_id", None),
        "interactions": (
            (
                "select customer_id, product_id, weight, purchase_count, last_event_at "
                f"from {recommendations.INTERACTIONS_TABLE} order by customer_id, product_id"
            ),
            None,
        ),
        "events": (f"select * from ({recommendations.EVENTS_SQL}) order by all", None),
        "repurchase_rates": (f"select * from ({recommendations.REPURCHASE_SQL}) order by all", None),
        "segments": (
            (
                f"select customer_id, rfm_segment from {recommendations.CUSTOMERS_TABLE} "
                "where rfm_segment is not null order by customer_id"
            ),
            None,
        ),
        "products": (
            f"select product_id, category, is_discontinued from {recommendations.PRODUCTS_TABLE}",
            None,
        ),
        # Parameters: DuckDB's $name becomes Spark's :name.
        "churn_snapshot": (
            f"select * from {churn.FEATURES_TABLE} where as_of_date = $as_of order by customer_id",
            {"as_of": as_of},
        ),
    }


def _same_frames(expected: pd.DataFrame, actual: pd.DataFrame) -> list:
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    differences = []
    for column in expected.columns:
        for i, (a, b) in enumerate(zip(expected[column].tolist(), actual[column].tolist())):
            if pd.isna(a) or pd.isna(b):
                same = pd.isna(a) and pd.isna(b)
            elif isinstance(a, float) or isinstance(b, float):
                same = math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
            else:
                same = pd.Timestamp(a) == pd.Timestamp(b) if hasattr(a, "year") else a == b
            if not same:
                differences.append((column, i, a, b))
    return differences


@pytest.fixture(scope="module")
def resources(both_builds):
    from orchestration.resources import SparkWarehouseResource, WarehouseResource

    warehouse, _ = both_builds
    return WarehouseResource(path=str(warehouse)), SparkWarehouseResource(path=str(warehouse))


@pytest.mark.parametrize(
    "name",
    [
        "churn_features",
        "interactions",
        "events",
        "repurchase_rates",
        "segments",
        "products",
        "churn_snapshot",
    ],
)
def test_ml_inputs_are_the_same_through_duckdb_and_spark(resources, name):
    duck, spark = resources
    latest = duck.read_frame("select max(as_of_date) as d from features.churn_features")["d"][0]
    sql, params = _queries(latest)[name]
    expected = duck.read_frame(sql, params)
    actual = spark.read_frame(sql, params)
    assert not expected.empty, f"{name} is empty on DuckDB: the comparison would prove nothing"
    differences = _same_frames(expected, actual)
    assert not differences, f"{name}: {len(differences)} values differ, e.g. {differences[:5]}"


def test_spark_reader_fetches_like_duckdb(resources):
    duck, spark = resources
    sql = "select count(*), count(distinct customer_id) from marts.customer_360"
    with duck.reader() as a, spark.reader() as b:
        assert a.execute(sql).fetchone() == b.execute(sql).fetchone()
        assert a.execute(sql).fetchall() == b.execute(sql).fetchall()


def test_recommender_asset_runs_spark_als_on_the_spark_tables(resources):
    """engine=spark_als: the asset fits ALS on the Spark interactions table and writes the top-k
    per customer to ml.recommendations_als in the DuckDB file, never a product already touched."""
    import dagster as dg

    from orchestration.ml.recommendations import RecommenderConfig, recommender_model

    duck, spark = resources
    result = dg.materialize(
        [recommender_model],
        resources={"warehouse": spark},
        run_config=dg.RunConfig(ops={"ml__recommender": RecommenderConfig(engine="spark_als", als_k=5)}),
    )
    assert result.success
    with duck.reader() as con:
        rows, customers, max_rank, touched = con.execute(
            """
            select count(*), count(distinct r.customer_id), max(r.rank), count(i.product_id)
            from ml.recommendations_als r
            left join intermediate.int_interactions_weighted i using (customer_id, product_id)
            """
        ).fetchall()[0]
        interacting = con.execute(
            "select count(distinct customer_id) from intermediate.int_interactions_weighted"
        ).fetchall()[0][0]
    assert customers == interacting and rows == 5 * customers
    assert max_rank == 5 and touched == 0
