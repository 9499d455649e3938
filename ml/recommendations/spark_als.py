"""Implicit-feedback ALS on Spark MLlib: the recommender for interaction data beyond one machine.

The EASE recommender (ml/recommend.py) inverts an item x item Gram matrix in memory and holds the
customer x item matrix on one machine. ALS (Hu, Koren & Volinsky 2008, as Spark MLlib implements
it) factorises the customer x product matrix in a distributed way, so it scales with the cluster;
it is the `spark_als` engine of the ml/recommender asset. Pure functions over Spark DataFrames:
no session is created here, PySpark is imported by the caller's session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

DEFAULT_RANK = 32
DEFAULT_REG = 0.05
DEFAULT_ALPHA = 10.0
DEFAULT_ITERATIONS = 10


def require_pyspark() -> None:
    """A clear error where PySpark is missing (the platform's default virtualenv)."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "the spark_als recommender needs PySpark and a Java 17+ runtime: pip install '.[spark]' "
            "(or use engine 'ease')"
        ) from exc


def fit_als_top_k(
    interactions: DataFrame,
    k: int = 10,
    *,
    user_col: str = "customer_id",
    item_col: str = "product_id",
    weight_col: str = "weight",
    rank: int = DEFAULT_RANK,
    reg: float = DEFAULT_REG,
    alpha: float = DEFAULT_ALPHA,
    iterations: int = DEFAULT_ITERATIONS,
    exclude_seen: bool = True,
    seed: int = 0,
) -> DataFrame:
    """Fit implicit ALS on (user, item, weight) rows and return the top ``k`` items per user as a
    Spark DataFrame (user_col, rank 1..k, item_col, score), items the user already touched left
    out when ``exclude_seen``. Weights are confidences (purchase and view weights, summed per
    pair); rows with a null id or a non-positive weight are ignored."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    missing = {user_col, item_col, weight_col} - set(interactions.columns)
    if missing:
        raise ValueError(f"interactions lack column(s) {sorted(missing)}")

    pairs = (
        interactions.where(F.col(user_col).isNotNull() & F.col(item_col).isNotNull())
        .groupBy(user_col, item_col)
        .agg(F.sum(F.col(weight_col).cast("float")).alias("confidence"))
        .where(F.col("confidence") > 0)
    )
    # MLlib wants integer ids: a dense index per id (the ids themselves are strings).
    users = (
        pairs.select(user_col)
        .distinct()
        .withColumn("_u", (F.row_number().over(Window.orderBy(user_col)) - 1).cast("int"))
    )
    items = (
        pairs.select(item_col)
        .distinct()
        .withColumn("_i", (F.row_number().over(Window.orderBy(item_col)) - 1).cast("int"))
    )
    indexed = pairs.join(users, user_col).join(items, item_col).cache()
    if indexed.isEmpty():
        raise ValueError("no interactions with a positive weight: nothing to fit")

    model = ALS(
        userCol="_u",
        itemCol="_i",
        ratingCol="confidence",
        implicitPrefs=True,
        rank=rank,
        regParam=reg,
        alpha=alpha,
        maxIter=iterations,
        nonnegative=True,
        coldStartStrategy="drop",
        seed=seed,
    ).fit(indexed)

    # recommendForAllUsers keeps seen items: ask for enough extra to have k unseen ones left.
    extra = indexed.groupBy("_u").count().agg(F.max("count")).first()[0] if exclude_seen else 0
    n_items = items.count()
    candidates = (
        model.recommendForAllUsers(min(k + extra, n_items))
        .select("_u", F.posexplode("recommendations").alias("_pos", "rec"))
        .select("_u", "_pos", F.col("rec._i").alias("_i"), F.col("rec.rating").alias("score"))
    )
    if exclude_seen:
        candidates = candidates.join(indexed.select("_u", "_i"), ["_u", "_i"], "left_anti")
    ranked = candidates.withColumn(
        "rank", F.row_number().over(Window.partitionBy("_u").orderBy(F.col("score").desc(), "_i"))
    ).where(F.col("rank") <= k)
    result = (
        ranked.join(users, "_u")
        .join(items, "_i")
        .select(
            user_col,
            F.col("rank").cast("int").alias("rank"),
            item_col,
            F.col("score").cast("double").alias("score"),
        )
    )
    return result
