"""Spark MLlib ALS (ml/recommend_spark.py) recommends what planted co-buyers bought.

Planted data: two product families of five; each customer of a family bought four of its five
products (a different one missing per customer) and one product of the other family. Implicit
ALS must put the missing family product first for (nearly) every customer, and never return a
product the customer already bought."""

import pytest

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark", reason="the spark extra is not installed (make test-spark)")

from ml.recommendations.spark_als import fit_als_top_k

FAMILIES = {"a": [f"a{i}" for i in range(5)], "b": [f"b{i}" for i in range(5)]}


def _planted() -> tuple[list[tuple[str, str, float]], dict[str, str]]:
    rows, missing = [], {}
    for family, products in FAMILIES.items():
        other = FAMILIES["b" if family == "a" else "a"]
        for n in range(40):
            customer = f"{family}-{n:02d}"
            missing[customer] = products[n % 5]
            rows += [(customer, p, 3.0) for p in products if p != missing[customer]]
            rows.append((customer, other[n % 5], 1.0))
    return rows, missing


def test_als_recommends_the_planted_co_bought_product(spark):
    rows, missing = _planted()
    interactions = spark.createDataFrame(rows, "customer_id string, product_id string, weight double")
    top = fit_als_top_k(interactions, k=3, rank=4, reg=0.1, alpha=1.0, iterations=15, seed=1).toPandas()

    bought = {(c, p) for c, p, _ in rows}
    assert set(top["customer_id"]) == set(missing)
    assert top.groupby("customer_id")["rank"].apply(sorted).map(lambda r: r == [1, 2, 3]).all()
    assert not any((c, p) in bought for c, p in zip(top["customer_id"], top["product_id"]))
    first = top[top["rank"] == 1].set_index("customer_id")["product_id"]
    hits = sum(first[c] == p for c, p in missing.items())
    assert hits >= 0.95 * len(missing), f"{hits} of {len(missing)} got their planted product first"


def test_als_rejects_bad_input(spark):
    frame = spark.createDataFrame([("c", "p", 1.0)], "customer_id string, product_id string, w double")
    with pytest.raises(ValueError, match="weight"):
        fit_als_top_k(frame)
    with pytest.raises(ValueError, match="k must be"):
        fit_als_top_k(frame.withColumnRenamed("w", "weight"), k=0)
