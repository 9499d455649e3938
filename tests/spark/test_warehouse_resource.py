"""The ML assets' input queries give the same frame through WarehouseResource (DuckDB) and
SparkWarehouseResource (the Spark tables the parity build wrote, same schema.table names), so the
assets run on either target. Uses the session's Spark build (conftest.py, both_builds)."""

import math

import pandas as pd
import pytest

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark", reason="the spark extra is not installed (make test-spark)")


def _asset_inputs(reader) -> dict[str, pd.DataFrame]:
    """What the ML assets read, through their own loaders (so a change to an asset's query is
    tested here too), rows sorted: engines return rows in any order. pytest only: with pyspark
    installed, orchestration.definitions must not be imported under `python -c`."""
    from orchestration.churn import assets as churn
    from orchestration.recommendations import assets as recommendations

    data = recommendations._load_training_data(reader)
    frames = {
        "churn_features": churn.read_features(reader),
        "churn_latest": churn.read_features(reader, latest_only=True),
        # The recommender reads interactions and segments as Arrow tables.
        "segments": data["segments"].to_pandas(),
        "interactions": data["interactions"].to_pandas(),
        **{name: data[name] for name in ("events", "transitions", "products", "rates")},
    }
    return {name: f.sort_values(list(f.columns)).reset_index(drop=True) for name, f in frames.items()}


# Parameters: DuckDB's $name becomes Spark's :name.
SNAPSHOT_SQL = "select * from features.churn_features where as_of_date = $as_of order by customer_id"


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


@pytest.fixture(scope="module")
def inputs(resources):
    """(DuckDB frames, Spark frames) of every ML input, read once per engine."""
    frames = []
    for resource in resources:
        with resource.reader() as reader:
            frames.append(_asset_inputs(reader))
    latest = resources[0].read_frame("select max(as_of_date) as d from features.churn_features")["d"][0]
    for resource, found in zip(resources, frames):
        found["churn_snapshot"] = resource.read_frame(SNAPSHOT_SQL, {"as_of": latest})
    return frames


@pytest.mark.parametrize(
    "name",
    [
        "churn_features",
        "churn_latest",
        "interactions",
        "events",
        "transitions",
        "rates",
        "segments",
        "products",
        "churn_snapshot",
    ],
)
def test_ml_inputs_are_the_same_through_duckdb_and_spark(inputs, name):
    expected, actual = inputs[0][name], inputs[1][name]
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

    from orchestration.recommendations.assets import RecommenderConfig, recommender_model

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
