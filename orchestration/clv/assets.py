"""Customer lifetime value as Dagster assets: train (``ml/clv_model``) and score (``ml/clv``).

``ml/clv_model``: per-customer purchase-day summaries (dbt: features.clv_customer_summary), BG/NBD + Gamma-Gamma fitted
with ``ml.clv``, the fit tracked in MLflow and registered as a new version of ``clv`` with alias
``challenger``; the blocking check ``clv_champion_gate`` promotes it. ``ml/clv``: every customer
scored by ``models:/clv@champion``, recomputing only customers whose summary row or champion
version changed (orchestration/incremental_scoring.py); tiers, ranks over everyone, are always
reassigned.

Promotion metric of ``clv``: ``holdout_mae_repeat_purchases``, the mean absolute error per
customer of predicted vs actual repeat purchase days over the last days of data (dbt var
``clv_holdout_days``, default 180; features.clv_holdout_summary),
from a refit on the data before them (lower is better). It measures what the scores are used
for (who buys again, how often) on a time split, unlike the in-sample log-likelihood.
"""

import time
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from c360.settings import get_settings
from c360.warehouse import write_frame
from ml import clv, plots, registry
from orchestration import incremental_scoring, metadata
from orchestration.dbt.assets import dbt_key
from orchestration.model_lifecycle import lineage, model_metadata
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

CLV_MODEL_KEY = dg.AssetKey(["ml", "clv_model"])
CLV_KEY = dg.AssetKey(["ml", "clv"])
CLV_EXPERIMENT = "clv"
PROMOTION_METRIC = clv.HOLDOUT_METRIC
PURCHASES_TABLE = "intermediate.int_purchases_unioned"
SUMMARY_VIEW = "features.clv_customer_summary"
HOLDOUT_VIEW = "features.clv_holdout_summary"

CLV_COLUMNS = [
    ("customer_id", "varchar", "Customer id (marts.identity_map)"),
    ("frequency", "bigint", "Repeat purchase days (distinct days after the first)"),
    ("recency_days", "bigint", "Days from the first to the last purchase day"),
    ("t_days", "bigint", "Days from the first purchase day to the as-of date"),
    ("monetary_value", "double", "Mean spend per repeat purchase day (0 without repeats)"),
    ("p_alive", "double", "BG/NBD probability the customer is still active"),
    ("expected_purchases", "double", "Expected purchase days over the horizon"),
    ("expected_avg_value", "double", "Gamma-Gamma expected spend per purchase day"),
    ("clv", "double", "Discounted expected spend over the horizon"),
    ("clv_tier", "varchar", "platinum (top 5%), gold (15%), silver (30%), bronze (50%)"),
    ("expected_days_to_next_purchase", "double", "Median days to the next purchase, capped at 365"),
    ("model_version", "bigint", "Version of the registered MLflow model `clv`"),
    ("scored_at", "timestamp", "When the row was scored"),
    incremental_scoring.HASH_COLUMN,
]


class CLVConfig(dg.Config):
    horizon_months: int = Field(default=12, description="Months of future purchases counted in the CLV.")
    monthly_discount_rate: float = Field(
        default=clv.DEFAULT_MONTHLY_DISCOUNT_RATE,
        description="Discount rate per month (0.01 is ~12.7% a year).",
    )
    promotion_margin: float = Field(
        default=0.005, description="How much lower the holdout MAE must be to replace the champion."
    )


def _read_summary(warehouse: WarehouseResource) -> "tuple[date | None, pd.DataFrame]":
    import pandas as pd

    with warehouse.reader() as con:
        summary = con.execute(f"select * from {SUMMARY_VIEW} order by customer_id").df()
    as_of = pd.Timestamp(summary["as_of_date"].iloc[0]).date() if len(summary) else None
    return as_of, summary.drop(columns=["as_of_date"])


def _holdout(warehouse: WarehouseResource) -> tuple[int, dict]:
    with warehouse.reader() as con:
        calibration = con.execute(f"select * from {HOLDOUT_VIEW} order by customer_id").df()
    holdout_days = int(calibration["holdout_days"].iloc[0]) if len(calibration) else 0
    actual = calibration.set_index("customer_id")["holdout_purchases"]
    return holdout_days, clv.holdout_error(calibration, actual, holdout_days)


def _tier_counts(scored: "pd.DataFrame") -> dict[str, int]:
    return {t: int((scored["clv_tier"] == t).sum()) for t, _ in clv.TIER_SHARES}


@dg.asset(
    key=CLV_MODEL_KEY,
    deps=[dbt_key("clv_customer_summary"), dbt_key("clv_holdout_summary")],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"mlflow", "python"},
    description="Customer lifetime value model: BG/NBD purchase frequency and P(alive), Gamma-Gamma "
    "spend, fitted on per-customer purchase-day summaries and registered as `clv` (@challenger).",
)
def clv_model(context: dg.AssetExecutionContext, config: CLVConfig, warehouse: WarehouseResource):
    import mlflow

    as_of, summary = _read_summary(warehouse)
    if reason := clv.too_little_to_fit(summary):
        return metadata.skipped(context, f"no model trained: {reason}")
    started = time.perf_counter()
    bgnbd, gamma_gamma = clv.fit_summary(summary)
    fit_seconds = time.perf_counter() - started
    holdout_days, holdout = _holdout(warehouse)
    model = clv.CLVModel(
        bgnbd, gamma_gamma, config.horizon_months, config.monthly_discount_rate, clv.PERIODS_PER_MONTH["D"]
    )
    log_likelihood = clv.bgnbd_log_likelihood(
        bgnbd, summary["frequency"], summary["recency_days"], summary["t_days"]
    )
    # The run shows what this version would score (the champion's scores are ml/clv's).
    scored = clv.score_customers(
        summary, bgnbd, gamma_gamma, config.horizon_months, config.monthly_discount_rate
    )

    experiment_id = registry.use_experiment(CLV_EXPERIMENT)
    with mlflow.start_run(run_name=f"clv {as_of}") as run:
        mlflow.log_params(model.params_dict() | {"holdout_days": holdout_days, "time_unit": "day"})
        mlflow.log_metrics(
            {
                "fit_seconds": fit_seconds,
                "customers": len(summary),
                "repeat_customers": int((summary["frequency"] > 0).sum()),
                "log_likelihood_per_customer": log_likelihood / len(summary),
                "total_clv": float(scored["clv"].sum()),
                **{k: float(v) for k, v in holdout.items()},
            }
        )
        registry.log_lineage(
            summary,
            source_table=PURCHASES_TABLE,
            as_of=str(as_of),
            name="clv_customer_summary",
            **lineage(context, warehouse),
        )
        mlflow.log_figure(plots.clv_by_tier_figure(scored), "clv_by_tier.png")
        mlflow.log_dict(_tier_counts(scored), "tier_counts.json")
        clv.log_clv_model(model)
    version = registry.register_challenger(run.info.run_id, clv.MODEL_NAME)
    return dg.MaterializeResult(
        metadata={
            **model_metadata(version, config.promotion_margin),
            "as_of": str(as_of),
            "params": {k: round(v, 6) for k, v in (asdict(bgnbd) | asdict(gamma_gamma)).items()},
            PROMOTION_METRIC: holdout[PROMOTION_METRIC],
            "holdout": {k: v for k, v in holdout.items() if k != PROMOTION_METRIC},
            "fit_seconds": fit_seconds,
            **metadata.run_metadata(experiment_id, run.info.run_id),
        }
    )


@dg.asset(
    key=CLV_KEY,
    deps=[CLV_MODEL_KEY, dbt_key("clv_customer_summary")],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "mlflow", "python"},
    description="Customer lifetime value per customer, scored by `models:/clv@champion`: P(alive), "
    "expected purchases, expected spend, discounted CLV over the horizon, value tier.",
    metadata={"dagster/column_schema": metadata.column_schema(CLV_COLUMNS)},
)
def clv_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    import mlflow
    import pandas as pd

    settings = get_settings().ensure_dirs()
    registry.configure()
    champion = registry.champion_info(clv.MODEL_NAME)
    if champion is None:
        # customer_360 reads ml.clv: an empty table keeps the marts building without values.
        with warehouse.connect() as con:
            write_frame(con, "ml.clv", pd.DataFrame({c[0]: [] for c in CLV_COLUMNS}), CLV_COLUMNS)
        return metadata.skipped(context, f"`{clv.MODEL_NAME}` has no @champion (ml/clv_model trained none)")
    as_of, summary = _read_summary(warehouse)
    hashes = incremental_scoring.row_hashes(summary)
    with warehouse.connect(read_only=True) as con:
        plan = incremental_scoring.plan(con, "ml.clv", hashes, champion["version"])
    todo = summary[summary["customer_id"].astype(str).isin(plan.rescore)]
    fresh = pd.DataFrame({c[0]: [] for c in CLV_COLUMNS})
    if len(todo):
        model = mlflow.pyfunc.load_model(
            f"models:/{clv.MODEL_NAME}@{registry.CHAMPION}"
        ).unwrap_python_model()
        fresh = clv.score_customers(
            todo, model.bgnbd, model.gamma_gamma, model.horizon_months, model.monthly_discount_rate
        )
    scored = incremental_scoring.merge_fresh(plan, fresh, hashes, champion["version"], summary["customer_id"])
    # The tier is a rank over every customer (ties by the summary's order, as a full scoring):
    # a changed CLV can move anyone's tier, so it is reassigned, not kept.
    scored["clv_tier"] = clv.clv_tier(scored["clv"].astype(float)).astype(str)
    plot_path = settings.reports / "clv_by_tier.png"
    plots.clv_by_tier_figure(scored).savefig(plot_path, dpi=100)
    with warehouse.connect() as con:
        write_frame(con, "ml.clv", scored, CLV_COLUMNS)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scored),
            "as_of": str(as_of),
            "model_version": champion["version"],
            "tier_counts": _tier_counts(scored),
            "mean_p_alive": float(scored["p_alive"].mean()),
            "total_clv": float(scored["clv"].sum()),
            "plot": dg.MetadataValue.path(str(plot_path)),
            **incremental_scoring.rows_metadata(plan, len(fresh), len(plan.previous)),
        }
    )
