"""The customer marts computed in Python, beside the dbt ones.

``ml/text_sentiment``: sentiment of every review and ticket text (``ml.sentiment`` trained on the
star-rated reviews), with held-out accuracy on the generated and the Olist reviews.
``ml/customer_segment_model`` (weekly) and ``marts/customer_segments`` (daily): k-means behaviour
segments (``ml.segments``) fitted on the features of ``int_customer_behaviour_summarised`` (never
customer_360, which reads the segments back), then every buyer assigned to the nearest centroid.
``reports/mart_pictures``: the plots a business user looks at, as PNGs and metadata.
"""

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from c360.settings import get_settings
from c360.warehouse import table_exists, write_frame
from ml import registry, segments, sentiment
from ml.pictures import funnel_figure, rfm_segments_figure, segment_value_figure
from orchestration import metadata
from orchestration.dbt.assets import dbt_key
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

SENTIMENT_KEY = dg.AssetKey(["ml", "text_sentiment"])
SEGMENTS_KEY = dg.AssetKey(["marts", "customer_segments"])
SEGMENT_MODEL_KEY = dg.AssetKey(["ml", "customer_segment_model"])
SEGMENT_MODEL_TABLE = "ml.customer_segment_model"
PICTURES_KEY = dg.AssetKey(["reports", "mart_pictures"])
SENTIMENT_EXPERIMENT = "sentiment"
BEHAVIOUR_TABLE = "intermediate.int_customer_behaviour_summarised"
CATEGORIES_TABLE = "intermediate.int_customer_categories_ranked"
TEXTS_TABLE = "intermediate.int_customer_texts_unioned"

SENTIMENT_COLUMNS = [
    ("source", "varchar", "product_reviews or service_tickets"),
    ("record_id", "varchar", "review_id or ticket_id"),
    ("customer_id", "varchar", "The person who wrote it (null if unresolved)"),
    ("sentiment", "double", "P(positive) - P(negative), in [-1, 1]; 0 for empty text"),
    ("label", "varchar", "negative, neutral or positive; null for empty text"),
]
SEGMENT_MODEL_COLUMNS = [
    ("fitted_at", "timestamp", "When the segmentation was fitted"),
    ("customers", "bigint", "Buyers it was fitted on"),
    (
        "model",
        "varchar",
        "Standardisation, centroids and names as JSON (ml.segments.SegmentModel); null: too few buyers",
    ),
]
SEGMENT_COLUMNS = [
    ("customer_id", "varchar", "Customer with at least one purchase"),
    ("segment_id", "integer", "Behaviour segment, 0 = the largest"),
    ("segment_name", "varchar", "Readable name from the segment's centroid"),
]


class SentimentConfig(dg.Config):
    evaluate_olist: bool = Field(
        default=True, description="Also report held-out accuracy on the real Olist reviews (about 10 s)."
    )


@dg.asset(
    key=SENTIMENT_KEY,
    deps=[dbt_key("int_customer_texts_unioned")],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "mlflow", "python"},
    description="Sentiment of every review and service-ticket text: a TF-IDF + logistic regression "
    "model trained offline on the star-rated reviews (the lexicon when there are too few).",
    metadata={"dagster/column_schema": metadata.column_schema(SENTIMENT_COLUMNS)},
)
def text_sentiment(context: dg.AssetExecutionContext, config: SentimentConfig, warehouse: WarehouseResource):
    import mlflow

    get_settings().ensure_dirs()
    with warehouse.connect(read_only=True) as con:
        # In a fixed order: the held-out split picks rows by position, and DuckDB's parallel scan
        # of the union returns them in any order, so two builds of the same data trained two
        # different models (scores up to 0.015 apart, a few labels and risk tags changed).
        texts = con.execute(
            f"select source, record_id, customer_id, text, stars from {TEXTS_TABLE} order by source, record_id"
        ).df()
    # Only reviews train; one TF-IDF pass over the unique texts trains, evaluates and scores.
    stars = texts["stars"].where(texts["source"] == "product_reviews")
    fitted = sentiment.fit_and_score(texts["text"], stars)
    if fitted["model"] is None:
        context.log.warning(fitted["evaluation"]["skipped"])
    scorer = "lexicon" if fitted["model"] is None else "tfidf_logistic_regression"
    labelled = texts[stars.notna() & texts["text"].fillna("").str.strip().ne("")]
    evaluation = {"generated": fitted["evaluation"]}
    if config.evaluate_olist:
        evaluation["olist"] = sentiment.olist_scores()
    metrics = sentiment.flat_metrics(evaluation)

    scored = texts[["source", "record_id", "customer_id"]].copy()
    scored["sentiment"] = fitted["scores"]
    scored["label"] = fitted["labels"]
    label_counts = {str(k): int(v) for k, v in scored["label"].value_counts().items()}

    experiment_id = registry.use_experiment(SENTIMENT_EXPERIMENT)
    # Metrics and counts only: review and ticket texts never leave the warehouse.
    with mlflow.start_run(run_name="text_sentiment") as run:
        mlflow.log_params(
            {"scorer": scorer, "training_reviews": len(labelled), "dagster_run_id": context.run.run_id}
        )
        mlflow.log_metrics(
            metrics | {f"texts_{k}": v for k, v in label_counts.items()} | {"texts_scored": len(scored)}
        )

    with warehouse.connect() as con:
        write_frame(con, "ml.text_sentiment", scored, SENTIMENT_COLUMNS)

    by_source = scored.groupby("source")["sentiment"].agg(["count", "mean"]).reset_index()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scored),
            "scorer": scorer,
            "label_counts": label_counts,
            "sentiment_by_source": metadata.markdown_table(by_source),
            "evaluation": evaluation,
            **{k: round(v, 4) for k, v in metrics.items() if not k.endswith(("n_train", "n_test"))},
            **metadata.run_metadata(experiment_id, run.info.run_id),
        }
    )


class SegmentsConfig(dg.Config):
    k_min: int = Field(default=3, description="Smallest number of segments tried.")
    k_max: int = Field(default=8, description="Largest number of segments tried.")
    silhouette_sample: int = Field(
        default=segments.SILHOUETTE_SAMPLE,
        description="Customers sampled to score each k (silhouette is quadratic).",
    )
    random_state: int = Field(default=0, description="Seed of the sample and of k-means.")
    k_change_margin: float = Field(
        default=segments.K_CHANGE_MARGIN,
        description="A refit keeps the stored segmentation's k unless another k's silhouette is "
        "this much higher (0: always the best k).",
    )


def behaviour_features_sql(categories: list[str]) -> str:
    """One row per customer with a purchase: channel, time-of-day and promotion shares from
    the behaviour summary, and one spend-share column per category."""
    pivot = "".join(
        f",\n        coalesce(sum(spend_share) filter (where category = '{c.replace(chr(39), chr(39) * 2)}'), 0)"
        f' as "{segments.CATEGORY_PREFIX}{c.replace(chr(34), "").replace(" ", "_")}"'
        for c in categories
    )
    return f"""
    with behaviour as (
        select * from {BEHAVIOUR_TABLE} where purchases > 0
    ),
    category_mix as (
        select customer_id{pivot}
        from {CATEGORIES_TABLE}
        group by customer_id
    ),
    final as (
        select
            b.customer_id, b.share_web, b.share_app, b.share_store,
            b.share_morning, b.share_afternoon, b.share_evening, b.share_night,
            b.promotion_sensitivity, m.* exclude (customer_id)
        from behaviour b
        left join category_mix m using (customer_id)
    )
    select * from final order by customer_id
    """


def _read_behaviour(con) -> "pd.DataFrame":
    categories = [
        r[0] for r in con.execute(f"select distinct category from {CATEGORIES_TABLE} order by 1").fetchall()
    ]
    return con.execute(behaviour_features_sql(categories)).df()


def _load_segment_model(con) -> tuple["segments.SegmentModel | None", str | None]:
    """The stored segmentation and when it was fitted; (None, None) before the first fit or when
    the last fit found too few buyers to segment."""
    if not table_exists(con, *SEGMENT_MODEL_TABLE.split(".")):
        return None, None
    row = con.execute(
        f"select model, cast(fitted_at as varchar) from {SEGMENT_MODEL_TABLE} limit 1"
    ).fetchone()
    if row is None or row[0] is None:
        return None, None
    return segments.SegmentModel.from_json(row[0]), row[1]


def _fit_segments(config: "SegmentsConfig", con, behaviour) -> dict:
    """Fit the segmentation on every buyer and store it in ``ml.customer_segment_model`` (an
    empty row when there are too few buyers: the segments are then empty), keeping the stored
    one's k unless another is clearly better. Returns metadata."""
    import pandas as pd

    previous, _ = _load_segment_model(con)
    try:
        result = segments.segment_customers(
            behaviour,
            range(config.k_min, config.k_max + 1),
            config.silhouette_sample,
            config.random_state,
            incumbent_k=previous.k if previous is not None else None,
            k_change_margin=config.k_change_margin,
        )
    except segments.NotEnoughCustomers as exc:
        result, skipped = None, str(exc)
    write_frame(
        con,
        SEGMENT_MODEL_TABLE,
        pd.DataFrame(
            {
                "fitted_at": [pd.Timestamp.now()],
                "customers": [len(behaviour)],
                "model": [result.assignment.to_json() if result is not None else None],
            }
        ),
        SEGMENT_MODEL_COLUMNS,
    )
    if result is None:
        return {"skipped": skipped}
    plot_path = get_settings().ensure_dirs().reports / "customer_segments.png"
    segments.segments_figure(result.profiles).savefig(plot_path, dpi=90)
    # What the refit kept from the segmentation it replaces: a marketer reads k changing as every
    # segment redrawn.
    kept = {"previous_k": previous.k} if previous is not None else {}
    return kept | {
        "k": result.k,
        "silhouette": round(result.silhouette, 4),
        "silhouette_by_k": {str(k): round(v, 4) for k, v in result.silhouette_by_k.items()},
        "segment_names": {str(k): v for k, v in result.names.items()},
        "plot": dg.MetadataValue.path(str(plot_path)),
    }


# In the `ml` group, so fitted by the weekly retrain (orchestration/automation/jobs.py) and by a
# full build, not daily. A daily refit chose k and re-clustered every buyer each day, so a
# segment's id and members could change overnight with no change in anyone's habits, and it cost
# the daily run a k-means fit on every buyer (3.8-4.8 s of an 85-89 s run at 100k customers,
# 8.4-10.1 s at 1M; assigned, 0.5-0.7 s at 100k). The daily run assigns each buyer to the nearest
# stored centroid (marts/customer_segments).
@dg.asset(
    key=SEGMENT_MODEL_KEY,
    deps=[dbt_key("int_customer_behaviour_summarised"), dbt_key("int_customer_categories_ranked")],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python", "scikitlearn"},
    description="The behaviour segmentation: k-means on category mix, time of day, promotion "
    "sensitivity and channel over every buyer, k chosen by silhouette, each segment named from its "
    "centroid; stored as centroids in ml.customer_segment_model. Refitted weekly.",
)
def customer_segment_model(
    context: dg.AssetExecutionContext, config: SegmentsConfig, warehouse: WarehouseResource
):
    with warehouse.connect(read_only=True) as con:
        behaviour = _read_behaviour(con)
    with warehouse.connect() as con:
        fitted = _fit_segments(config, con, behaviour)
    if "skipped" in fitted:
        return metadata.skipped(context, fitted["skipped"])
    return dg.MaterializeResult(metadata={"customers": len(behaviour), **fitted})


@dg.asset(
    key=SEGMENTS_KEY,
    deps=[
        SEGMENT_MODEL_KEY,
        dbt_key("int_customer_behaviour_summarised"),
        dbt_key("int_customer_categories_ranked"),
    ],
    group_name="marts",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python"},
    description="Behaviour segments: every buyer in the segment of the nearest centroid of the "
    "stored segmentation (ml/customer_segment_model), its name and the segments' profiles "
    "(marts.customer_segment_profiles).",
    metadata={"dagster/column_schema": metadata.column_schema(SEGMENT_COLUMNS)},
)
def customer_segments(
    context: dg.AssetExecutionContext, config: SegmentsConfig, warehouse: WarehouseResource
):
    import pandas as pd

    with warehouse.connect(read_only=True) as con:
        behaviour = _read_behaviour(con)
        model, fitted_at = _load_segment_model(con)
    fitted = {}
    if model is None:
        # No segmentation stored yet (this asset run on its own before the first fit): fit it
        # here, so the segments never wait for the weekly retrain.
        with warehouse.connect() as con:
            fitted = _fit_segments(config, con, behaviour)
            model, fitted_at = _load_segment_model(con)
    if model is None:
        # customer_360 reads the segments: empty tables keep it building, without segments.
        with warehouse.connect() as con:
            write_frame(
                con,
                "marts.customer_segments",
                pd.DataFrame({c[0]: [] for c in SEGMENT_COLUMNS}),
                SEGMENT_COLUMNS,
            )
        return metadata.skipped(context, fitted.get("skipped", "no segmentation has been fitted"))
    labels = segments.assign_segments(model, behaviour)
    assigned = pd.DataFrame(
        {
            "customer_id": behaviour["customer_id"],
            "segment_id": labels,
            "segment_name": pd.Series(labels).map(model.names).to_numpy(),
        }
    )
    profiles = segments.profile_segments(segments.feature_matrix(behaviour), labels)
    profiles.insert(0, "segment_name", pd.Series(model.names))
    profiles = profiles.reset_index()

    with warehouse.connect() as con:
        write_frame(con, "marts.customer_segments", assigned, SEGMENT_COLUMNS)
        write_frame(con, "marts.customer_segment_profiles", profiles)

    summary = profiles[
        [
            "segment_id",
            "segment_name",
            "customers",
            "share_web",
            "share_app",
            "share_store",
            "promotion_sensitivity",
        ]
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(assigned),
            "k": model.k,
            "segments": metadata.markdown_table(summary),
            "segment_names": {str(k): v for k, v in model.names.items()},
            "model_fitted_at": fitted_at,
            "fitted_here": bool(fitted),
        }
    )


PICTURE_QUERIES = {
    "rfm": """
        select rfm_segment, count(*) as customers, round(sum(monetary), 2) as revenue
        from marts.customer_rfm group by 1 order by 1
    """,
    "segments": """
        select segment_name, count(*) as customers, avg(revenue) as revenue_per_customer,
               avg(promotion_sensitivity) as promotion_sensitivity
        from marts.customer_360 where segment_name is not null group by 1 order by 1
    """,
    "funnel": "select * from marts.funnel_daily",
}


@dg.asset(
    key=PICTURES_KEY,
    deps=[dbt_key("customer_rfm"), dbt_key("customer_360"), dbt_key("funnel_daily"), SEGMENTS_KEY],
    group_name="reports",
    pool=WAREHOUSE_POOL,
    kinds={"python"},
    description="The customer marts as pictures under $C360_HOME/reports/: customers and revenue per "
    "RFM segment, value per behaviour segment, and where the funnel loses sessions.",
)
def mart_pictures(warehouse: WarehouseResource):
    settings = get_settings().ensure_dirs()
    with warehouse.connect(read_only=True) as con:
        data = {name: con.execute(sql).df() for name, sql in PICTURE_QUERIES.items()}
    figures = {
        "rfm_segments": rfm_segments_figure(data["rfm"]) if len(data["rfm"]) else None,
        "segment_value": segment_value_figure(data["segments"]) if len(data["segments"]) else None,
        "funnel_dropoff": funnel_figure(data["funnel"]) if len(data["funnel"]) else None,
    }
    shown = {}
    for name, figure in figures.items():
        if figure is None:
            shown[name] = "no data"
            continue
        path = settings.reports / f"{name}.png"
        figure.savefig(path, dpi=90)
        shown[name] = dg.MetadataValue.path(str(path))
    funnel = data["funnel"]
    if len(funnel):
        totals = funnel[
            ["sessions", "product_view_sessions", "cart_sessions", "checkout_sessions", "purchase_sessions"]
        ].sum()
        shown["funnel_totals"] = {k: int(v) for k, v in totals.items()}
        shown["conversion_rate"] = round(float(totals["purchase_sessions"] / max(totals["sessions"], 1)), 4)
    if len(data["rfm"]):
        shown["rfm_segments"] = metadata.markdown_table(data["rfm"])
    return dg.MaterializeResult(metadata=shown)
