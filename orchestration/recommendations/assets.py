"""Product recommendations and cross-sell rules, as Dagster assets.

``ml/recommender``: fits the recommender on ``int_interactions_weighted`` (EASE item-item
collaborative filtering, popularity per RFM segment for cold starts, next-item transitions
from each customer's time-ordered touches), evaluates it on a temporal split (EASE's λ searched
from the champion's λ, else from every other λ of the grid, climbing to the best; each λ scored
on a fixed sample of validation customers, models.VALIDATION_USERS), logs it to
MLflow and registers it as ``recommender`` (@challenger); the blocking check
``recommender_champion_gate`` moves ``champion`` only when the temporal NDCG@10 beats the
champion's. The registered artefacts hold item-keyed parts only (no customer id, no history):
served, the model reads customers' histories from ``int_interactions_weighted`` at serving time
(or takes them from the caller), so an erasure reaches every version. With no interactions,
fewer than two products or nothing to evaluate on the holdout it skips, saying why.
``ml/cross_sell_rules``: "bought X, also buys Y" rules counted in DuckDB over every basket
(web/app orders and store receipts, anonymous ones included: rules are aggregates).
``ml/recommendations``: top-k per customer of ``marts.customer_360`` and placement (home =
personal CF, product = similar to the last touched product, cart = next item and bought-together
complements), scored in batches by the champion model. Without a champion: the most bought
products (catalogue order when nothing was bought) in the home placement, reason ``popular``,
or an empty table when there is no product or customer. For on-site use only (the consented
email audience is activation/recommendations_email).

Repurchase: a product already bought is shown again only in categories where buying the same
product again is typical: consumables (grocery, beauty, pets, baby, health) by default. The
repurchase rate per category (share of (customer, product) pairs bought on two or more
purchases, features.category_repurchase_rates) is logged with every model; ``learn_repurchase_categories`` picks
the categories from it instead. It is off by default because on the generated data the rates do
not separate consumables cleanly (baby 0.32 ... outdoor 0.29, beauty 0.27 ... fashion 0.19).
"""

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field
from threadpoolctl import threadpool_limits

from c360.settings import get_settings
from c360.warehouse import memory_share, table_exists, write_frame
from ml import registry
from ml.recommendations import models, spark_als
from ml.recommendations.placements import (
    DEFAULT_REPURCHASE_CATEGORIES,
    REASON_NEXT,
    REASON_PERSONAL,
    REASON_POPULAR,
    REASON_SIMILAR,
    REASON_TOGETHER,
    anchors,
    fit_model_on_matrix,
    learn_repurchase_categories,
    popularity_state,
    score_placement_blocks,
)
from orchestration import incremental_scoring, metadata
from orchestration.dbt.assets import dbt_key
from orchestration.model_lifecycle import lineage, model_metadata
from orchestration.resources import WAREHOUSE_POOL, SparkWarehouseResource, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

RECOMMENDER_KEY = dg.AssetKey(["ml", "recommender"])
RULES_KEY = dg.AssetKey(["ml", "cross_sell_rules"])
RECOMMENDATIONS_KEY = dg.AssetKey(["ml", "recommendations"])
MODEL_NAME = "recommender"
EXPERIMENT = "recommender"
PROMOTION_METRIC = "temporal_ndcg_at_10"

INTERACTIONS_TABLE = models.HISTORY_TABLE  # intermediate.int_interactions_weighted
PRODUCTS_TABLE = "staging.stg_catalog__products"
CUSTOMERS_TABLE = "marts.customer_360"
TOUCHES_VIEW = "features.recommender_touches"
TRANSITIONS_VIEW = "features.recommender_transitions"
EVALUATION_CUSTOMERS_VIEW = "features.recommender_evaluation_customers"
REPURCHASE_VIEW = "features.category_repurchase_rates"
PAIRS_VIEW = "features.cross_sell_pairs"
# Customers whose touches the temporal evaluation reads (read_evaluation_touches).
EVALUATION_CUSTOMERS = 100_000
# The share of DuckDB's memory limit the final fit's reads get while the evaluation runs beside them.
# At 1M customers, ml/recommender alone: 0.5 peaked at 7.26 GiB (157.0 s), 0.25 at 6.83 GiB (153.8 s),
# load 1-2; beside a CI run, 7.28 and 7.10 GiB.
FIT_READ_MEMORY_SHARE = 0.25

RECOMMENDATION_COLUMNS = [
    ("customer_id", "varchar", "Customer (marts.customer_360)"),
    ("placement", "varchar", "home, product or cart"),
    ("rank", "integer", "1 = best"),
    ("product_id", "varchar", "Recommended product: in the catalogue, not discontinued"),
    ("score", "double", "Placement score (comparable within a customer and placement)"),
    (
        "reason",
        "varchar",
        (
            f"{REASON_PERSONAL}, {REASON_SIMILAR}, {REASON_NEXT}, {REASON_TOGETHER}, {REASON_POPULAR}; "
            f"{models.REASON_POPULAR} (home only) when there is no champion model"
        ),
    ),
    (
        "model_version",
        "bigint",
        "Version of the registered MLflow model `recommender` (null: popularity fallback)",
    ),
    ("scored_at", "timestamp", "When the row was scored"),
    incremental_scoring.HASH_COLUMN,
    (
        "rules_hash",
        "ubigint",
        (
            "Hash of the cross-sell rule list of the customer's anchor product (0: none) the row "
            "was scored from: tells a rescore for changed rules from one for changed own inputs"
        ),
    ),
]
RULE_COLUMNS = [
    ("antecedent", "varchar", "Product in the basket"),
    ("consequent", "varchar", "Product also bought"),
    ("baskets", "bigint", "Baskets holding both"),
    ("support", "double", "Share of baskets holding both"),
    ("confidence", "double", "P(consequent | antecedent)"),
    ("lift", "double", "confidence / P(consequent); > 1 = bought together more than by chance"),
]


class RecommenderConfig(dg.Config):
    holdout_days: int = Field(
        default=60,
        description="Days at the end of the data held out for the temporal evaluation: the model "
        "is trained on touches before them and scored on purchases in them (promotion metric).",
    )
    neighbours: int = Field(default=models.DEFAULT_NEIGHBOURS, description="Item-item weights kept per item.")
    repurchase_categories: list[str] = Field(
        default=list(DEFAULT_REPURCHASE_CATEGORIES),
        description="Categories whose already-bought products may be recommended again.",
    )
    learn_repurchase_categories: bool = Field(
        default=False,
        description="Instead, allow the categories whose repurchase rate reaches min_repurchase_rate.",
    )
    min_repurchase_rate: float = Field(
        default=0.3,
        description="Share of a category's (customer, product) pairs bought on two or more purchases.",
    )
    promotion_margin: float = Field(
        default=0.002, description="How much higher the temporal NDCG@10 must be to replace the champion."
    )
    engine: str = Field(
        default="ease",
        description="ease: the EASE model above, registered in MLflow (serves ml/recommendations). "
        "spark_als: Spark MLlib implicit ALS for interaction data beyond one machine (the spark "
        "extra and Java 17+); writes the top als_k products per customer to ml.recommendations_als, "
        "not registered (docs/SCALE_OUT.md).",
    )
    als_k: int = Field(default=10, description="spark_als: products per customer.")
    evaluation_customers: int = Field(
        default=EVALUATION_CUSTOMERS,
        description="The temporal evaluation (and the L2 it tunes) uses the touches of at most this "
        "many customers, a fixed md5-ordered sample; the model itself is fitted on every customer.",
    )


class CrossSellConfig(dg.Config):
    min_support: float = Field(default=0.0005, description="Minimum share of baskets holding both products.")
    min_confidence: float = Field(default=0.05, description="Minimum P(consequent | antecedent).")
    min_lift: float = Field(default=1.5, description="Minimum lift (1 = independent).")
    min_baskets: int = Field(default=3, description="Minimum baskets holding both (guards tiny samples).")


class RecommendationsConfig(dg.Config):
    k: int = Field(default=10, description="Products per customer and placement.")


def read_evaluation_touches(con, customers: int = EVALUATION_CUSTOMERS) -> "pd.DataFrame":
    """The touches of at most ``customers`` customers of a fixed pseudo-random sample
    (features.recommender_evaluation_customers), ordered per customer in time, for the temporal
    evaluation: at 1M customers every touch is ~80M rows, more than 14 GB as a DataFrame."""
    # The weight is a decimal in the view: as a double here, since Arrow's DataFrame makes a Python
    # Decimal of each one. Through Arrow, not ``execute().df()``: at 100k customers (8.3M touches)
    # 4.8 s against 14.8 s, the same frame (tests/orchestration/recommendations).
    sql = f"""
        select t.customer_id, t.product_id, t.event_time, t.event_type, cast(t.weight as double) as weight
        from {TOUCHES_VIEW} t join {EVALUATION_CUSTOMERS_VIEW} s using (customer_id)
        where s.sample_rank <= {int(customers)}
        order by t.customer_id, t.event_time, t.product_id
        """
    return _arrow(con, sql).to_pandas()


# ---------------------------------------------------------------- assets


def _training_threads():
    # Two shared cores: BLAS threads beyond that only contend (EASE's solve is the hot spot).
    return threadpool_limits(get_settings().training_threads)


@dg.asset(
    key=RULES_KEY,
    deps=[dbt_key("cross_sell_pairs")],
    group_name="recommendations",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Cross-sell rules antecedent -> consequent with support, confidence and lift, "
    "counted in DuckDB over every order and store receipt.",
    metadata={"dagster/column_schema": metadata.column_schema(RULE_COLUMNS)},
)
def cross_sell_rules(config: CrossSellConfig, warehouse: WarehouseResource):
    params = config.model_dump()
    with warehouse.connect() as con:
        con.execute(
            f"""
            create or replace table ml.cross_sell_rules as
            select * from {PAIRS_VIEW}
            where baskets >= $min_baskets and support >= $min_support
              and confidence >= $min_confidence and lift >= $min_lift
            order by lift desc, support desc, antecedent, consequent
            """,
            params,
        )
        rows, antecedents, max_lift = con.execute(
            "select count(*), count(distinct antecedent), max(lift) from ml.cross_sell_rules"
        ).fetchall()[0]
        top = con.execute("select * from ml.cross_sell_rules order by lift desc limit 10").df()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(rows),
            "antecedents": int(antecedents),
            "max_lift": float(max_lift or 0.0),
            "thresholds": params,
            "top_rules": dg.MetadataValue.md(top.round(4).to_markdown(index=False)),
        }
    )


def too_little_to_train(interactions: "pa.Table | pd.DataFrame") -> str | None:
    """Why the recommender cannot be trained on these interactions, or None if it can."""
    column = interactions["product_id"]
    products = pc.count_distinct(column).as_py() if isinstance(interactions, pa.Table) else column.nunique()
    return _too_little(len(interactions), products)


def _too_little(rows: int, products: int) -> str | None:
    """``too_little_to_train`` from the interactions' row count and distinct (non-null) products."""
    if rows == 0:
        return (
            f"{INTERACTIONS_TABLE} is empty (no purchases, carts or views of catalogue products "
            "by identified customers)"
        )
    if products < 2:
        return f"{INTERACTIONS_TABLE} touches {products} product: nothing to rank"
    return None


def _arrow(con, sql: str) -> pa.Table:
    """A query's rows as an Arrow table: DuckDB hands its columns over without a DataFrame (33M
    interactions at 1M customers; ``con.sql``, as ``execute`` would copy them once more); other
    readers (Spark) go through theirs."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return con.sql(sql).to_arrow_table()
    return pa.Table.from_pandas(con.execute(sql).df(), preserve_index=False)


# The interactions' columns the final fit reads; the lineage digest names them.
FIT_COLUMNS = ("customer_id", "product_id", "weight", "purchase_count", "last_event_at")


def _load_training_data(con, evaluation_customers: int = EVALUATION_CUSTOMERS) -> dict:
    """What ml/recommender reads, each relation once: the interactions and segments as Arrow
    tables (the interaction matrix and each customer's segment are built from them directly),
    the rest as DataFrames. The asset itself reads the interactions of a DuckDB warehouse coded
    (``_coded_fit_interactions``), not as this table."""
    return {
        "interactions": _read_fit_interactions(con),
        **_load_fit_data(con),
        "events": read_evaluation_touches(con, evaluation_customers),
    }


def _read_fit_interactions(con) -> pa.Table:
    """The interactions as the final fit reads them from a reader that is not DuckDB."""
    return _arrow(con, f"select {', '.join(FIT_COLUMNS)} from {INTERACTIONS_TABLE}")


def _load_fit_data(con) -> dict:
    """What the final fit reads besides the interactions."""
    transitions = con.execute(f"select * from {TRANSITIONS_VIEW}").df()
    segments = _arrow(
        con, f"select customer_id, rfm_segment from {CUSTOMERS_TABLE} where rfm_segment is not null"
    )
    products = con.execute(f"select product_id, category, is_discontinued from {PRODUCTS_TABLE}").df()
    rates = con.execute(f"select * from {REPURCHASE_VIEW} order by repurchase_rate desc, category").df()
    return {
        "transitions": transitions,
        "segments": segments,
        "products": products,
        "rates": rates,
    }


def _prepare_fit(warehouse: WarehouseResource) -> dict:
    """``_load_fit_data`` plus, when there is enough to train on, the interaction matrix
    (``matrix``), its lineage ``digest``, each row's segment (``user_segments``) and the seconds
    these three took (``prepare_seconds``; on DuckDB, from the coded read on, as DuckDB codes the
    ids). No interactions table is kept: ``interaction_rows`` and ``too_little``
    (``too_little_to_train``) say what the asset still needs of it."""
    with warehouse.reader() as con:
        # Read beside the temporal evaluation (recommender_model): DuckDB gets a quarter of its
        # allowance so that the two together stay within it (at L: 9.2 GiB peak with all of it,
        # 7.3 with half).
        duck = isinstance(con, duckdb.DuckDBPyConnection)
        with memory_share(con, FIT_READ_MEMORY_SHARE) if duck else nullcontext():
            data = _load_fit_data(con)
            if duck:
                data.update(_coded_fit_interactions(con))
            else:
                interactions = _read_fit_interactions(con)
    if not duck:
        data.update(_fit_interactions_from_arrow(interactions))
        # Not kept for the final fit: the matrix and the digest hold what it reads, and the table
        # is the biggest thing read while the Gram matrix and its inverse are held.
        del interactions
    if data["too_little"] is None:
        started = time.perf_counter()
        data["user_segments"] = user_segments(data["matrix"], data["segments"])
        data["prepare_seconds"] += time.perf_counter() - started
    return data


def _fit_interactions_from_arrow(interactions: pa.Table) -> dict:
    """``interaction_rows``, ``too_little`` and, when there is enough to train on, ``matrix``,
    ``digest`` and ``prepare_seconds`` from the interactions as an Arrow table (readers other than
    DuckDB: Spark)."""
    fit = {"interaction_rows": len(interactions), "too_little": too_little_to_train(interactions)}
    if fit["too_little"] is None:
        started = time.perf_counter()
        matrix = models.interaction_matrix_from_arrow(
            interactions["customer_id"], interactions["product_id"], interactions["weight"]
        )
        fit["matrix"] = matrix
        fit["digest"] = interactions_digest(matrix, interactions)
        fit["prepare_seconds"] = time.perf_counter() - started
    return fit


def _coded_fit_interactions(con) -> dict:
    """``_fit_interactions_from_arrow``'s dict, read from DuckDB with both ids coded there (as
    ``_coded_interactions``): the matrix from int32 positions and float32 weights, the digest's
    totals as one aggregate. The same matrix and digest as from the Arrow table (tested). At 1M
    customers the table held 33M rows of string ids, which Arrow then hashed to code them, while
    the temporal evaluation ran beside it."""
    totals = con.sql(
        f"select count(*) as n, sum(purchase_count)::bigint as purchases, max(last_event_at) as last_event_at "
        f"from {INTERACTIONS_TABLE}"
    ).to_arrow_table()
    rows = totals["n"][0].as_py()
    names = ("customer_id", "product_id")
    with _registered_id_codes(con, INTERACTIONS_TABLE, names) as ids:
        fit = {"interaction_rows": rows, "too_little": _too_little(rows, len(ids["product_id"]))}
        if fit["too_little"] is not None:
            return fit
        started = time.perf_counter()
        # Rows with a missing id drop out in the joins, as from the Arrow table; no order is
        # needed, the matrix comes out canonical.
        coded = con.sql(
            "select c.code as row, p.code as col, coalesce(t.weight, 0)::float as weight "
            f"from {INTERACTIONS_TABLE} t "
            "join _customer_id_codes c on t.customer_id = c.customer_id "
            "join _product_id_codes p on t.product_id = p.product_id"
        ).to_arrow_table()
    arrays = [coded[name].to_numpy() for name in ("row", "col", "weight")]
    del coded
    matrix = models.interaction_matrix_from_codes(
        *arrays, *(ids[name].to_numpy(zero_copy_only=False) for name in names)
    )
    del arrays
    fit["matrix"] = matrix
    fit["digest"] = _digest(
        matrix, FIT_COLUMNS, totals["purchases"][0].as_py(), totals["last_event_at"][0].as_py()
    )
    fit["prepare_seconds"] = time.perf_counter() - started
    return fit


def user_segments(matrix: models.InteractionMatrix, segments: pa.Table) -> np.ndarray:
    """Each matrix row's ``rfm_segment`` (None when the customer has none), matched in Arrow."""
    at = pc.index_in(pa.array(matrix.user_ids, type=pa.string()), value_set=segments["customer_id"])
    return segments["rfm_segment"].take(at).to_numpy(zero_copy_only=False)


def interactions_digest(matrix: models.InteractionMatrix, interactions: pa.Table) -> str:
    """Lineage digest of what the model is fitted on, from arrays instead of a DataFrame: the
    summed customer x product weights (sorted CSR, so the rows' order does not matter), the ids of
    rows and columns, and the purchase counts and latest touch of the relation."""
    return _digest(
        matrix,
        interactions.column_names,
        pc.sum(interactions["purchase_count"]).as_py(),
        pc.max(interactions["last_event_at"]).as_py(),
    )


def _digest(matrix: models.InteractionMatrix, columns, purchases, last_event) -> str:
    """``interactions_digest`` from the relation's column names, summed purchase counts and
    latest touch."""
    csr = matrix.matrix.copy()
    csr.sort_indices()
    h = hashlib.sha256()
    h.update("\x1f".join(columns).encode())
    for ids in (matrix.user_ids, matrix.item_ids):
        h.update("\x1f".join(map(str, ids)).encode())
    for array in (csr.indptr, csr.indices, csr.data):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update(str(purchases).encode())
    h.update(str(last_event).encode())
    return h.hexdigest()[:32]


def champion_l2() -> float | None:
    """λ of the current @champion (its run's ``l2`` param), where the λ search starts; None
    without a champion or an EASE one."""
    from mlflow import MlflowClient

    registry.configure()
    champion = registry.champion_info(MODEL_NAME)
    if champion is None:
        return None
    params = MlflowClient().get_run(champion["run_id"]).data.params
    if params.get("method", "ease") != "ease" or "l2" not in params:
        return None
    return float(params["l2"])


@dg.asset(
    key=RECOMMENDER_KEY,
    deps=[
        dbt_key("int_interactions_weighted"),
        dbt_key("recommender_touches"),
        dbt_key("recommender_transitions"),
        dbt_key("recommender_evaluation_customers"),
        dbt_key("category_repurchase_rates"),
        dbt_key("customer_360"),
    ],
    group_name="recommendations",
    pool=WAREHOUSE_POOL,
    kinds={"mlflow", "python"},
    description="EASE item-item CF, popularity per RFM segment and next-item transitions, "
    "evaluated on a temporal split and registered in MLflow as `recommender`.",
)
def recommender_model(
    context: dg.AssetExecutionContext, config: RecommenderConfig, warehouse: WarehouseResource
):
    import mlflow
    import pandas as pd

    if config.engine == "spark_als":
        return _fit_spark_als(config, warehouse)
    if config.engine != "ease":
        raise dg.Failure(f"unknown recommender engine {config.engine!r}: use 'ease' or 'spark_als'")
    _training_threads()
    with warehouse.reader() as con:
        latest = _arrow(con, f"select max(last_event_at) as last_event_at from {INTERACTIONS_TABLE}")
        last_event = latest["last_event_at"][0].as_py()
        events = None if last_event is None else read_evaluation_touches(con, config.evaluation_customers)
    with ThreadPoolExecutor(1, thread_name_prefix="recommender-fit-data") as pool:
        # The final fit's inputs (the whole relation and the transitions over every touch: most of
        # the reading) are read and made into the interaction matrix while the temporal evaluation
        # runs on its sample: DuckDB and Arrow work outside the GIL, on the core that the
        # evaluation's single-threaded parts leave idle. Not beside the read of the sample: two
        # big DuckDB queries at once only share the cores and add up their memory. Skips are
        # still decided in the order below (too little to train, then nothing to evaluate).
        loading = pool.submit(_prepare_fit, warehouse)
        evaluation, not_evaluated, start_l2 = None, None, None
        if last_event is not None:
            # The same touches as read_evaluation_touches', whose latest int_interactions_weighted keeps per pair.
            last_event = pd.Timestamp(last_event)
            cutoff = (last_event - timedelta(days=config.holdout_days)).normalize()
            # Warm start: the champion's λ and its grid neighbours; without one, every other λ of the grid.
            start_l2 = champion_l2()
            try:
                evaluation = models.evaluate_temporal(events, cutoff, l2_start=start_l2)
            except ValueError as exc:  # a split with nothing on one side
                not_evaluated = exc
            del events
        data = loading.result()
    interaction_rows, products = data["interaction_rows"], data["products"]
    if reason := data["too_little"]:
        return metadata.skipped(context, f"no model trained: {reason}", interactions=interaction_rows)
    if not_evaluated is not None:
        return metadata.skipped(
            context,
            f"no model trained: nothing to evaluate on the last {config.holdout_days} days ({not_evaluated})",
            interactions=interaction_rows,
        )
    platform, popularity = evaluation["platform"], evaluation["popularity"]
    if not evaluation["users"]["evaluated"] or pd.isna(platform["ndcg@10"]):
        return metadata.skipped(
            context,
            f"no model trained: no customer with touches before {cutoff.date()} bought in the "
            f"last {config.holdout_days} days, so there is nothing to evaluate it on",
            interactions=interaction_rows,
        )

    repurchase_categories = (
        learn_repurchase_categories(data["rates"], config.min_repurchase_rate)
        if config.learn_repurchase_categories
        else sorted(config.repurchase_categories)
    )
    allow_repurchase = products.loc[products["category"].isin(repurchase_categories), "product_id"]
    unavailable = products.loc[products["is_discontinued"], "product_id"]
    started = time.perf_counter()
    matrix, digest = data.pop("matrix"), data["digest"]
    model = fit_model_on_matrix(
        matrix,
        data["transitions"],
        platform["l2"],
        config.neighbours,
        data["user_segments"],
        allow_repurchase,
        unavailable,
    )
    # The matrix, digest and segments were made beside the evaluation: their time counts too.
    fit_seconds = data["prepare_seconds"] + time.perf_counter() - started
    customers = matrix.matrix.shape[0]
    del matrix

    metrics = {
        PROMOTION_METRIC: platform["ndcg@10"],
        "temporal_precision_at_10": platform["precision@10"],
        "temporal_recall_at_10": platform["recall@10"],
        "temporal_map_at_10": platform["map@10"],
        "temporal_coverage": platform["coverage"],
        "popularity_ndcg_at_10": popularity["ndcg@10"],
        "popularity_recall_at_10": popularity["recall@10"],
        "popularity_coverage": popularity["coverage"],
        "temporal_users_evaluated": evaluation["users"]["evaluated"],
        "temporal_users_cold_start": evaluation["users"]["cold_start"],
        "fit_seconds": fit_seconds,
        "customers": customers,
        "products": len(model.state["meta"]["item_ids"]),
        "interactions": interaction_rows,
    }
    experiment_id = registry.use_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"recommender {last_event.date()}") as run:
        mlflow.log_params(
            {
                "method": model.state["meta"]["method"],
                "l2": platform["l2"],
                "neighbours": config.neighbours,
                "holdout_days": config.holdout_days,
                "l2_search": ("coarse to fine" if start_l2 is None else f"from the champion's {start_l2:g}")
                + f", on at most {models.VALIDATION_USERS} validation customers",
                "temporal_cutoff": str(cutoff.date()),
                "repurchase_categories": ",".join(repurchase_categories),
                "segments": ",".join(model.state["meta"]["segments"]),
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        # The digest of the full relation, computed from its arrays: a DataFrame of it would be
        # digested row by row and its schema inferred by MLflow (minutes at 1M customers).
        registry.log_lineage(
            digest,
            source_table=INTERACTIONS_TABLE,
            as_of=str(last_event),
            name="recommender_interactions",
            **lineage(context, warehouse),
        )
        mlflow.log_dict(
            {"platform": platform, "popularity": popularity, "users": evaluation["users"]},
            "temporal_eval.json",
        )
        mlflow.log_dict(
            dict(zip(data["rates"]["category"], data["rates"]["repurchase_rate"].round(4))),
            "repurchase_rates.json",
        )
        models.log_recommender(model, name="model")
    version = registry.register_challenger(run.info.run_id, MODEL_NAME)
    return dg.MaterializeResult(
        metadata={
            **model_metadata(version, config.promotion_margin),
            PROMOTION_METRIC: float(platform["ndcg@10"]),
            "temporal_eval": dg.MetadataValue.md(
                "| model | NDCG@10 | P@10 | R@10 | MAP@10 | coverage |\n|---|---:|---:|---:|---:|---:|\n"
                + "".join(
                    f"| {name} | {m['ndcg@10']:.4f} | {m['precision@10']:.4f} | {m['recall@10']:.4f} "
                    f"| {m['map@10']:.4f} | {m['coverage']:.3f} |\n"
                    for name, m in (("platform CF", platform), ("popularity", popularity))
                )
            ),
            "repurchase_categories": repurchase_categories,
            "l2": float(platform["l2"]),
            "fit_seconds": fit_seconds,
            "customers": metrics["customers"],
            "products": metrics["products"],
            **metadata.run_metadata(experiment_id, run.info.run_id),
        }
    )


def _fit_spark_als(config: RecommenderConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The spark_als engine: ALS on the interactions where they live (the Spark tables with
    SparkWarehouseResource; otherwise read from DuckDB into a local session), top-k to DuckDB."""
    try:
        spark_als.require_pyspark()
    except RuntimeError as exc:
        raise dg.Failure(str(exc)) from exc
    spark_warehouse = (
        warehouse
        if isinstance(warehouse, SparkWarehouseResource)
        else SparkWarehouseResource(path=warehouse.path)
    )
    session = spark_warehouse.session()
    columns = "customer_id, product_id, weight"
    if warehouse is spark_warehouse:
        interactions = session.sql(f"select {columns} from {INTERACTIONS_TABLE}")
    else:
        interactions = session.createDataFrame(
            warehouse.read_frame(f"select {columns} from {INTERACTIONS_TABLE}")
        )
    started = time.perf_counter()
    try:
        top = spark_als.fit_als_top_k(interactions, k=config.als_k).toPandas()
    except ValueError as exc:
        raise dg.Failure(f"{INTERACTIONS_TABLE}: {exc}") from exc
    fit_seconds = time.perf_counter() - started
    with warehouse.connect() as con:
        write_frame(con, "ml.recommendations_als", top)
    return dg.MaterializeResult(
        metadata={
            "engine": "spark_als",
            "rows": len(top),
            "customers": int(top["customer_id"].nunique()),
            "fit_seconds": fit_seconds,
        }
    )


def load_champion() -> tuple[int, "models.RecommenderModel", dict] | None:
    """The champion's version, its RecommenderModel (artefacts loaded) and run params; None
    when `recommender` has no @champion."""
    import mlflow
    from mlflow import MlflowClient

    registry.configure()
    champion = registry.champion_info(MODEL_NAME)
    if champion is None:
        return None
    # No check of the model's pip requirements against this environment: it lists every installed
    # distribution (~1 s, paid by each daily run, where this is the only model loaded). The
    # recommender's state is npz arrays and JSON, and its pickled wrapper is this platform's own
    # class: neither depends on a third-party package's version to load the same.
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{registry.CHAMPION}", suppress_warnings=True)
    params = MlflowClient().get_run(champion["run_id"]).data.params
    return int(champion["version"]), loaded.unwrap_python_model(), params


def rule_list_hashes(rules: "pd.DataFrame", anchor: "pd.Series") -> "pd.Series":
    """Per customer (``anchor``: their anchor product, None without one, indexed by customer id),
    the hash of the cross-sell rule list (rules whose ``antecedent`` is the anchor, in the order
    given) their cart placement is scored from; 0 without an anchor or a rule list. The rules are
    recounted from every basket (by the weekly retrain): hashing each customer's one list, instead
    of all rules as a shared input, rescores only the customers anchored on a product whose list
    changed."""
    import pandas as pd

    if rules.empty or anchor.empty:
        return pd.Series(np.zeros(len(anchor), dtype=np.uint64), index=anchor.index)
    lists = incremental_scoring.keyed_hashes(rules, "antecedent")
    at = lists.index.get_indexer(anchor.astype(object))
    values = np.where(at >= 0, lists.to_numpy(np.uint64)[np.maximum(at, 0)], np.uint64(0))
    return pd.Series(values.astype(np.uint64), index=anchor.index)


def _why_rescored(
    con, rescore: "pd.Index", own: "pd.Series", rule_part: "pd.Series", anchor: "pd.Series"
) -> tuple[dict, np.ndarray]:
    """Of the customers rescored that had stored rows, those rescored only because their anchor's
    rule list changed (their stored hash equals their own inputs' hash combined with the stored
    rule-list hash, and that differs from today's): metadata (how many, on how many distinct
    anchors) and their ids. Only their cart placement reads the rules."""
    import pandas as pd

    con.register("_rescore_ids", pd.DataFrame({"customer_id": rescore}))
    try:
        stored = con.execute(
            "select customer_id, any_value(input_hash) as input_hash, coalesce(any_value(rules_hash), 0) as rules_hash "
            "from ml.recommendations where customer_id in (select customer_id from _rescore_ids) group by 1"
        ).df()
    finally:
        con.unregister("_rescore_ids")
    if stored.empty:
        return {"customers_rescored_for_rules": 0, "anchors_rescored_for_rules": 0}, np.array(
            [], dtype=object
        )
    ids = stored["customer_id"].astype(str).to_numpy()
    before = stored["rules_hash"].fillna(0).to_numpy().astype(np.uint64)
    own_inputs_same = incremental_scoring.with_part(own.loc[ids], pd.Series(before, index=ids)).to_numpy(
        np.uint64
    ) == stored["input_hash"].to_numpy().astype(np.uint64)
    only_rules = own_inputs_same & (before != rule_part.loc[ids].to_numpy(np.uint64))
    return {
        "customers_rescored_for_rules": int(only_rules.sum()),
        "anchors_rescored_for_rules": int(anchor.loc[ids[only_rules]].nunique()),
    }, ids[only_rules]


# What the scoring hands DuckDB per batch (cast there to RECOMMENDATION_COLUMNS' types).
BATCH_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("placement", pa.string()),
        ("rank", pa.int32()),
        ("product_id", pa.string()),
        ("score", pa.float64()),
        ("reason", pa.string()),
        ("model_version", pa.int64()),
        ("scored_at", pa.timestamp("us")),
        ("input_hash", pa.uint64()),
        ("rules_hash", pa.uint64()),
    ]
)


def _read_interactions(con, customer_ids: "pd.Index | None" = None) -> "pd.DataFrame":
    """The interactions the placements are scored from (of ``customer_ids`` only, when given:
    DuckDB), ordered (the last touched product is picked by a stable sort on last_event_at, so
    ties go by row order, which must not vary between runs for kept scores to equal fresh ones).
    The ids come as categoricals: 33M rows of ids as Python strings cost ~5 GB and every lookup
    converts them again."""
    where = ""
    if customer_ids is not None:
        import pandas as pd

        con.register("_scored_customers", pd.DataFrame({"customer_id": customer_ids.astype(str)}))
        where = "where customer_id in (select customer_id from _scored_customers) "
    source = (
        f"(select customer_id, product_id, purchase_count, last_event_at from {INTERACTIONS_TABLE} {where})"
    )
    temporary = customer_ids is not None and isinstance(con, duckdb.DuckDBPyConnection)
    try:
        if temporary:
            # The rescored customers' rows once, in a temporary table (a read-only connection
            # may write one): the codes and the rows read them three times, and each read of
            # the filtered table semi-joined all its rows again (at 1M customers, 221,799
            # customers and 11.8M of 33M rows: 4.1-4.7 s, against 2.4-2.6 s this way).
            con.execute(f"create or replace temporary table _scored_interactions as select * from {source}")
            source = "_scored_interactions"
        if isinstance(con, duckdb.DuckDBPyConnection):
            table = _coded_interactions(con, source)
        else:
            table = _arrow(
                con, f"select * from {source} order by customer_id, product_id, last_event_at, purchase_count"
            ).combine_chunks()
            for name in ("customer_id", "product_id"):
                at = table.schema.get_field_index(name)
                table = table.set_column(at, name, pc.dictionary_encode(table[name].cast(pa.string())))
    finally:
        if temporary:
            con.execute("drop table if exists _scored_interactions")
        if customer_ids is not None:
            con.unregister("_scored_customers")
    # Column by column, each Arrow column freed once converted: not the table and the frame whole
    # side by side (0.7 GiB each at 1M customers).
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _coded_interactions(con, source: str) -> pa.Table:
    """``source``'s rows with both ids dictionary-encoded by DuckDB itself: each id's distinct
    values once, sorted, and the rows as their positions, in the order of the ids (= the order of
    the positions), then last_event_at and purchase_count. At 1M customers the ids as 33M strings
    (sorted by DuckDB, handed over, combined and encoded by Arrow) put 4-5 GiB on the step's peak
    for a frame of 0.7 GiB; as int32 codes, about 1 GiB."""
    names = ("customer_id", "product_id")
    with _registered_id_codes(con, source, names) as dictionaries:
        joins = " ".join(
            f"left join _{name}_codes {name}_codes on r.{name} = {name}_codes.{name}" for name in names
        )
        codes = [f"{name}_codes.code" for name in names]
        rows = con.sql(
            f"select {codes[0]} as customer_id, {codes[1]} as product_id, r.purchase_count, r.last_event_at "
            f"from {source} r {joins} "
            f"order by {codes[0]}, {codes[1]}, r.last_event_at, r.purchase_count"
        ).to_arrow_table()
    for name, values in dictionaries.items():
        at = rows.schema.get_field_index(name)
        indices = rows[name].combine_chunks()  # one array: one dictionary for pandas to keep
        rows = rows.set_column(at, name, pa.DictionaryArray.from_arrays(indices, values))
    return rows


@contextmanager
def _registered_id_codes(con, source: str, names) -> Iterator[dict[str, pa.StringArray]]:
    """Each id column of ``names``: its distinct non-null values in ``source``, sorted (as Arrow
    sorts them), registered as the relation ``_<name>_codes`` (the id and ``code``, its int32
    position) for a query to join rows to. Yields the values per name; unregistered on exit."""
    dictionaries = {}
    try:
        for name in names:
            values = con.sql(f"select distinct {name} from {source} where {name} is not null order by 1")
            values = values.to_arrow_table()[name].combine_chunks().cast(pa.string())
            dictionaries[name] = values
            con.register(
                f"_{name}_codes",
                pa.table({name: values, "code": pa.array(np.arange(len(values), dtype=np.int32))}),
            )
        yield dictionaries
    finally:
        for name in dictionaries:
            con.unregister(f"_{name}_codes")


# Per customer with interactions, in one DuckDB pass: a hash of the rows the placements read and
# the anchor product (anchors(): the model's item of their latest last_event_at, ties to the last
# in row order, i.e. the greatest product id; a missing time counts as the latest). A daily run
# needs only these to decide whom to rescore, and reads the rows of those customers alone: at 1M
# customers, reading all 33M rows into pandas, hashing them and finding the anchors took 50 s.
# The anchor's order (time, then product id) is one number: the time in microseconds, then the
# product's rank among the model's items in DuckDB's own string order. Ordering by the pair as a
# struct, this query took 3.5-3.6 s at 1M customers (33M rows); as a number, 2.4 s, with
# the same anchor for every customer.
_INTERACTION_SUMMARY_SQL = f"""
with model_items as (
    -- Distinct: a repeated item would repeat its interaction rows in the join (and cancel out of the hash).
    select product_id, row_number() over (order by product_id) as item_rank
    from (select distinct product_id from _model_items)
)
select
    i.customer_id,
    hash(bit_xor(hash(i.product_id, i.purchase_count, i.last_event_at)), count(*)) as interactions_hash,
    arg_max(
        i.product_id,
        epoch_us(coalesce(i.last_event_at, timestamp '9999-12-31'))::hugeint * 4294967296 + m.item_rank
    ) filter (where m.item_rank is not null) as anchor
from {INTERACTIONS_TABLE} i
left join model_items m on m.product_id = i.product_id
group by i.customer_id
"""


def interaction_summary(con, item_ids, customer_ids: "pd.Series") -> tuple["pd.Series", "pd.Series"]:
    """(interactions hash, anchor) per customer of ``customer_ids`` (str), from DuckDB
    (``_INTERACTION_SUMMARY_SQL``): 0 and None for a customer without interactions. A product
    pair per customer is unique (a dbt test), so the rows' hashes combine in any order."""
    import pandas as pd

    con.register("_model_items", pd.DataFrame({"product_id": pd.Series(list(item_ids), dtype=str)}))
    try:
        summary = con.sql(_INTERACTION_SUMMARY_SQL).df()
    finally:
        con.unregister("_model_items")
    summary.index = summary["customer_id"].astype(str).to_numpy(dtype=object)
    ids = pd.Index(customer_ids.astype(str).to_numpy(dtype=object), dtype=object)
    at = summary.index.get_indexer(ids)
    found = at >= 0
    hashes = np.zeros(len(ids), dtype=np.uint64)
    hashes[found] = summary["interactions_hash"].to_numpy(np.uint64)[at[found]]
    anchor = np.full(len(ids), None, dtype=object)
    anchor[found] = summary["anchor"].to_numpy(dtype=object)[at[found]]
    anchor = np.where(pd.isna(anchor), None, anchor)
    return (
        pd.Series(hashes, index=ids, name="interactions_hash"),
        pd.Series(anchor, index=ids, name="anchor", dtype=object),
    )


def _create_recommendations_table(con) -> None:
    con.execute(
        "create or replace table ml.recommendations ("
        + ", ".join(f"{name} {sql_type}" for name, sql_type, _ in RECOMMENDATION_COLUMNS)
        + ")"
    )


@dg.asset(
    key=RECOMMENDATIONS_KEY,
    deps=[
        RECOMMENDER_KEY,
        RULES_KEY,
        dbt_key("customer_360"),
        dbt_key("int_interactions_weighted"),
    ],
    group_name="recommendations",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "mlflow", "python"},
    description="Top-k products per customer of marts.customer_360 for the home (personal), "
    "product (similar to the last touched product) and cart (next item, bought together) "
    "placements, from the champion `recommender`. On-site use; marketing uses the consented audience.",
    metadata={"dagster/column_schema": metadata.column_schema(RECOMMENDATION_COLUMNS)},
)
def recommendations(
    context: dg.AssetExecutionContext, config: RecommendationsConfig, warehouse: WarehouseResource
):
    import pandas as pd

    _training_threads()
    champion = load_champion()
    with warehouse.reader() as con:
        customers = con.execute(
            f"select customer_id, rfm_segment as segment from {CUSTOMERS_TABLE} order by customer_id"
        ).df()
        # With a champion, DuckDB summarises the interactions (interaction_summary) and only the
        # rescored customers' rows are read, below; the popularity fallback, which counts every
        # row, and other readers (Spark) read them all here.
        summarised = champion is not None and isinstance(con, duckdb.DuckDBPyConnection)
        interactions = None if summarised else _read_interactions(con)
        products = con.execute(f"select product_id, category, is_discontinued from {PRODUCTS_TABLE}").df()
        if summarised:
            interactions_hash, summary_anchor = interaction_summary(
                con, champion[1].state["meta"]["item_ids"], customers["customer_id"]
            )
    # The rules are this platform's own output (ml.*), always in the DuckDB file. The weekly
    # retrain mines them: a daily run before the first one scores without cart rules.
    with warehouse.connect(read_only=True) as con:
        mined = table_exists(con, "ml", "cross_sell_rules")
        rules = (
            con.execute(
                "select antecedent, consequent, confidence from ml.cross_sell_rules order by antecedent, consequent"
            ).df()
            if mined
            else pd.DataFrame({"antecedent": [], "consequent": [], "confidence": []}).astype(
                {"antecedent": str, "consequent": str, "confidence": float}
            )
        )
    if not mined:
        context.log.warning(
            "ml.cross_sell_rules does not exist yet (the weekly retrain mines it): no cart rules"
        )
    available = set(products.loc[~products["is_discontinued"], "product_id"].astype(str))
    fallback = None
    if champion is None:
        why = metadata.skip_reason(context, RECOMMENDER_KEY) or "materialize ml/recommender and its gate"
        fallback = f"`{MODEL_NAME}` has no @champion ({why})"
        if not available or customers.empty:
            # Activation audiences read ml.recommendations: an empty table keeps them building.
            with warehouse.connect() as con:
                _create_recommendations_table(con)
            nothing = "no available product in the catalogue" if not available else "no customer"
            return metadata.skipped(context, f"nothing to recommend: {fallback} and {nothing}")
        # Most bought (catalogue order without purchases), home placement only.
        version, state, placements = None, popularity_state(products, interactions), ("home",)
        repurchase_categories = sorted(DEFAULT_REPURCHASE_CATEGORIES)
    else:
        version, model, params = champion
        state, placements = model.state, ("home", "product", "cart")
        repurchase_categories = [c for c in params.get("repurchase_categories", "").split(",") if c]
    repurchase = set(products.loc[products["category"].isin(repurchase_categories), "product_id"].astype(str))

    # A customer is rescored when their segment or interactions change, or the cross-sell rule
    # list of their anchor product (the cart placement reads no other rule: the placements'
    # anchor, ml/recommendations/placements.anchors); the catalogue, repurchase categories, k and
    # placements are shared by every score (orchestration/incremental_scoring.py).
    shared = (available, repurchase, config.k, placements)
    ids = customers["customer_id"].astype(str)
    if summarised:
        own = incremental_scoring.with_part(
            incremental_scoring.input_hashes(customers, shared=shared), interactions_hash
        )
        anchor = summary_anchor
    else:
        own = incremental_scoring.input_hashes(customers, interactions, shared=shared)
        anchor = (
            anchors(state["meta"]["item_ids"], ids, interactions)
            if "cart" in placements  # the popularity fallback reads no rule
            else pd.Series([None] * len(ids), index=ids.to_numpy(), dtype=object)
        )
    rule_part = rule_list_hashes(rules, anchor)
    hashes = incremental_scoring.with_part(own, rule_part)
    why_rules = {"customers_rescored_for_rules": 0, "anchors_rescored_for_rules": 0}
    cart_only = np.array([], dtype=object)
    with warehouse.connect(read_only=True) as con:
        stored_columns = incremental_scoring.table_columns(con, "ml.recommendations")
        if stored_columns and "rules_hash" not in stored_columns:
            plan = incremental_scoring.Plan(
                pd.Index(hashes.index), pd.DataFrame(), 0, "scores written before rule-list hashes"
            )
        else:
            plan = incremental_scoring.plan(con, "ml.recommendations", hashes, version, keep_rows=False)
        if not plan.why and len(plan.rescore):
            why_rules, cart_only = _why_rescored(con, plan.rescore, own, rule_part, anchor)
    # Customers rescored only for their anchor's rules get a new cart placement; their home and
    # product rows (which read no rule) are kept, with today's hashes.
    whole = plan.rescore.difference(pd.Index(cart_only), sort=False)
    if interactions is None:
        with warehouse.reader() as con:
            everyone = len(plan.rescore) == len(customers)
            interactions = _read_interactions(con, None if everyone else plan.rescore)
    customer_ids = customers["customer_id"].astype(str)
    interaction_ids = interactions["customer_id"]  # categorical: matched per category, not per row
    interaction_rows = len(interactions)
    work = [
        (
            customers[customer_ids.isin(group)],
            # Everyone rescored (a first build, a new champion): the frame itself, not a copy of
            # it (~0.9 GB at 1M customers).
            interactions if len(group) == len(customers) else interactions[interaction_ids.isin(group)],
            scored,
        )
        for group, scored in ((whole, placements), (pd.Index(cart_only), ("cart",)))
        if len(group)
    ]
    # From here the frames live only in `work`, which the scoring empties group by group: each
    # is freed once its blocks are set up (score_placement_blocks keeps the matrices it needs).
    del interactions, interaction_ids

    # To the microsecond: recommendations_valid judges the rows scored after its last pass, so two
    # runs' rows must never share a time.
    scored_at = datetime.now()
    started = time.perf_counter()
    rows = 0
    with warehouse.connect() as con:
        if plan.why:
            _create_recommendations_table(con)
        else:
            con.register("_current", pd.DataFrame({"customer_id": hashes.index}))
            con.register("_rescore", pd.DataFrame({"customer_id": whole}))
            cart_clause = ""
            if len(cart_only):
                con.register(
                    "_cart_only",
                    pd.DataFrame(
                        {
                            "customer_id": cart_only.astype(str),
                            "input_hash": hashes.loc[cart_only].to_numpy(np.uint64),
                            "rules_hash": rule_part.loc[cart_only].to_numpy(np.uint64),
                        }
                    ),
                )
                cart_clause = (
                    " or (placement = 'cart' and customer_id in (select customer_id from _cart_only))"
                )
            con.execute(
                "delete from ml.recommendations where customer_id in (select customer_id from _rescore) "
                "or customer_id not in (select customer_id from _current)" + cart_clause
            )
            if len(cart_only):
                con.execute(
                    "update ml.recommendations r set input_hash = c.input_hash, rules_hash = c.rules_hash "
                    "from _cart_only c where r.customer_id = c.customer_id"
                )
                con.unregister("_cart_only")
            con.unregister("_current")
            con.unregister("_rescore")
        kept = con.execute("select count(*) from ml.recommendations").fetchone()[0]
        item_ids = pa.array(state["meta"]["item_ids"], pa.string())
        # Hashes by position, looked up once per group rather than per row of every batch.
        hash_values, rule_values = hashes.to_numpy(np.uint64), rule_part.to_numpy(np.uint64)
        hash_index = pd.Index(hashes.index.to_numpy(dtype=object), dtype=object)
        rule_index = pd.Index(rule_part.index.to_numpy(dtype=object), dtype=object)
        failed: list[BaseException] = []

        def batches():
            nonlocal rows
            try:
                while work:
                    todo, todo_interactions, scored = work.pop(0)
                    todo_ids = todo["customer_id"].astype(str).to_numpy(dtype=object)
                    input_hash = hash_values[hash_index.get_indexer(todo_ids)]
                    rules_hash = rule_values[rule_index.get_indexer(todo_ids)]
                    todo_arrow = pa.array(todo_ids, pa.string())
                    for block in score_placement_blocks(
                        state,
                        todo,
                        todo_interactions,
                        rules,
                        available,
                        repurchase,
                        config.k,
                        scored,
                        threads=get_settings().training_threads,
                    ):
                        todo_interactions = None  # the generator holds it until its setup ran
                        batch = block.arrow(todo_arrow, item_ids)
                        n = batch.num_rows
                        if fallback:
                            popular = pa.repeat(models.REASON_POPULAR, n)
                            batch = batch.set_column(
                                batch.schema.get_field_index("reason"), "reason", popular
                            )
                        batch = (
                            batch.append_column("model_version", pa.array([version] * n, pa.int64()))
                            .append_column("scored_at", pa.array(np.full(n, np.datetime64(scored_at, "us"))))
                            .append_column("input_hash", pa.array(input_hash[block.customer]))
                            .append_column("rules_hash", pa.array(rules_hash[block.customer]))
                        )
                        rows += n
                        yield from batch.cast(BATCH_SCHEMA).to_batches()
            except BaseException as exc:  # DuckDB reports it as an Arrow error: keep the original
                failed.append(exc)
                raise

        # One statement for every batch, which DuckDB appends as they come: an insert per batch
        # commits and logs each on its own (~0.1 s each, 545 of them at 1M customers).
        try:
            write_frame(
                con,
                "ml.recommendations",
                pa.RecordBatchReader.from_batches(BATCH_SCHEMA, batches()),
                RECOMMENDATION_COLUMNS,
                append=True,
            )
        except Exception:
            if failed:
                raise failed[0] from None
            raise
        reasons = dict(
            con.execute(
                "select placement || ':' || reason, count(*) from ml.recommendations group by 1"
            ).fetchall()
        )
        total_rows = con.execute("select count(*) from ml.recommendations").fetchone()[0]
    score_seconds = time.perf_counter() - started
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(total_rows),
            "customers": len(customers),
            # Interactions read to score: the rescored customers' rows only, with a champion.
            "interaction_rows_read": interaction_rows,
            **incremental_scoring.rows_metadata(plan, rows, kept),
            **why_rules,
            "model_version": version,
            "score_seconds": score_seconds,
            "reasons": {k: int(v) for k, v in sorted(reasons.items())},
            "repurchase_categories": repurchase_categories,
            **({"fallback": "popularity", "fallback_reason": fallback} if fallback else {}),
        }
    )
