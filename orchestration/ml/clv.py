"""Customer lifetime value and weekly category demand, as Dagster assets.

``ml/clv``: per-customer purchase-day summaries built in DuckDB, BG/NBD + Gamma-Gamma fitted
with ``ml.clv``, every customer scored, the fit tracked and registered in MLflow as ``clv``.
``ml/demand_forecast``: weekly units per category built in DuckDB, forecast with
``ml.forecast`` (per category the model its own recent backtest chose) and backtested against
seasonal-naive (MASE, WAPE, MAPE overall and per category).

Promotion metric of ``clv``: ``holdout_mae_repeat_purchases``, the mean absolute error per
customer of predicted vs actual repeat purchase days over the last ``holdout_days`` of data,
from a refit on the data before them (lower is better). It measures what the scores are used
for (who buys again, how often) on a time split, unlike the in-sample log-likelihood.
"""

import time
from dataclasses import asdict
from datetime import date, datetime, timedelta

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_dbt import get_asset_key_for_model
from pydantic import Field

from c360.settings import get_settings
from ml import clv, forecast, plots, registry
from orchestration.dbt.assets import dbt_models
from orchestration.ml import mlflow_meta
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

CLV_KEY = dg.AssetKey(["ml", "clv"])
DEMAND_KEY = dg.AssetKey(["ml", "demand_forecast"])
CLV_MODEL_NAME = "clv"
CLV_EXPERIMENT = "clv"
PROMOTION_METRIC = "holdout_mae_repeat_purchases"
PURCHASES_TABLE = "intermediate.int_purchases_unioned"
PURCHASE_LINES_TABLE = "intermediate.int_purchase_lines_unioned"

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
]
DEMAND_COLUMNS = [
    ("category", "varchar", "Product category"),
    ("week_start", "date", "Monday of the forecast week"),
    ("units_forecast", "double", "Forecast units"),
    ("lower", "double", "Lower bound of the 90% interval"),
    ("upper", "double", "Upper bound of the 90% interval"),
    ("model", "varchar", "Model chosen by the category's own backtest (ml.forecast.choose_model)"),
]


class CLVConfig(dg.Config):
    horizon_months: int = Field(default=12, description="Months of future purchases counted in the CLV.")
    monthly_discount_rate: float = Field(
        default=clv.DEFAULT_MONTHLY_DISCOUNT_RATE,
        description="Discount rate per month (0.01 is ~12.7% a year).",
    )
    holdout_days: int = Field(
        default=180,
        description="Days at the end of the data held out to measure the promotion metric "
        "(a refit on the earlier data predicts each customer's repeat purchases in them).",
    )
    promotion_margin: float = Field(
        default=0.005, description="How much lower the holdout MAE must be to replace the champion."
    )


class DemandForecastConfig(dg.Config):
    horizon_weeks: int = Field(default=8, description="Weeks forecast ahead.")
    backtest_folds: int = Field(default=4, description="Rolling-origin folds of `horizon_weeks` each.")


# Purchases collapse to purchase days (a day's orders are one purchase of their summed amount);
# T runs to the as-of date, the day after the last purchase in the data.
SUMMARY_SQL = f"""
with purchases as (
    select customer_id, cast(purchased_at as date) as day, coalesce(amount, 0) as amount
    from {PURCHASES_TABLE}
    where customer_id is not null and cast(purchased_at as date) < $as_of
),
days as (
    select customer_id, day, sum(amount) as amount from purchases group by all
),
firsts as (
    select *, min(day) over (partition by customer_id) as first_day from days
),
final as (
    select
        customer_id,
        count(*) filter (where day > first_day) as frequency,
        date_diff('day', min(day), max(day)) as recency_days,
        date_diff('day', min(first_day), $as_of) as t_days,
        coalesce(avg(amount) filter (where day > first_day), 0) as monetary_value
    from firsts
    group by customer_id
)
select * from final order by customer_id
"""

HOLDOUT_SQL = f"""
select customer_id, count(distinct cast(purchased_at as date)) as holdout_purchases
from {PURCHASES_TABLE}
where customer_id is not null and cast(purchased_at as date) >= $start and cast(purchased_at as date) < $end
group by customer_id
"""


def _as_of(con) -> date | None:
    last = con.execute(f"select max(cast(purchased_at as date)) from {PURCHASES_TABLE}").fetchone()[0]
    return None if last is None else last + timedelta(days=1)


def _summary(con, as_of: date) -> pd.DataFrame:
    return con.execute(SUMMARY_SQL, {"as_of": as_of}).df()


def holdout_check(con, as_of: date, holdout_days: int) -> dict:
    """Refit on purchases before ``as_of - holdout_days``; compare predicted and actual repeat
    purchase days in the holdout, per customer acquired before it. NaN metrics if too short."""
    split = as_of - timedelta(days=holdout_days)
    calibration = _summary(con, split)
    if len(calibration) < 20 or (calibration["frequency"] > 0).sum() < 5:
        return {PROMOTION_METRIC: float("nan"), "holdout_customers": len(calibration)}
    actual = (
        con.execute(HOLDOUT_SQL, {"start": split, "end": as_of})
        .df()
        .set_index("customer_id")["holdout_purchases"]
    )
    actual = actual.reindex(calibration["customer_id"], fill_value=0).to_numpy(dtype=float)
    bgnbd = clv.fit_bgnbd(calibration["frequency"], calibration["recency_days"], calibration["t_days"])
    predicted = clv.expected_purchases(
        bgnbd, holdout_days, calibration["frequency"], calibration["recency_days"], calibration["t_days"]
    )
    return {
        PROMOTION_METRIC: float(np.mean(np.abs(predicted - actual))),
        "holdout_customers": len(calibration),
        "holdout_predicted_repeat": float(predicted.sum()),
        "holdout_actual_repeat": float(actual.sum()),
    }


def _model_example() -> pd.DataFrame:
    # Synthetic customers (days), so no one's data lands in the artifacts.
    return pd.DataFrame(
        {
            "frequency": [0.0, 2.0, 8.0],
            "recency": [0.0, 120.0, 400.0],
            "T": [60.0, 365.0, 420.0],
            "monetary_value": [0.0, 45.0, 80.0],
        }
    )


def _pinned(*packages: str) -> list[str]:
    import importlib.metadata

    return [f"{p}=={importlib.metadata.version(p)}" for p in packages]


def _log_clv_model(model: clv.CLVModel):
    from mlflow.models import infer_signature

    example = _model_example()
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=model,
        signature=infer_signature(example, model.predict(None, example)),
        input_example=example,
        # Explicit requirements: inference would load the model in a subprocess (slow).
        pip_requirements=_pinned("mlflow", "numpy", "pandas", "scipy"),
    )


@dg.asset(
    key=CLV_KEY,
    deps=[get_asset_key_for_model([dbt_models], "int_purchases_unioned")],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "mlflow", "python"},
    description="Customer lifetime value per customer: BG/NBD purchase frequency and P(alive), "
    "Gamma-Gamma spend, discounted CLV over the horizon, value tier. Model registered as `clv`.",
    metadata={"dagster/column_schema": mlflow_meta.column_schema(CLV_COLUMNS)},
)
def clv_scores(context: dg.AssetExecutionContext, config: CLVConfig, warehouse: WarehouseResource):
    settings = get_settings().ensure_dirs()
    warehouse_path = warehouse.path or str(settings.warehouse)
    with warehouse.connect(read_only=True) as con:
        as_of = _as_of(con)
        if as_of is None:
            raise dg.Failure(f"{PURCHASES_TABLE} has no purchases: nothing to fit")
        summary = _summary(con, as_of)
        started = time.perf_counter()
        bgnbd, gamma_gamma = clv.fit_summary(summary)
        fit_seconds = time.perf_counter() - started
        holdout = holdout_check(con, as_of, config.holdout_days)

    model = clv.CLVModel(
        bgnbd, gamma_gamma, config.horizon_months, config.monthly_discount_rate, clv.PERIODS_PER_MONTH["D"]
    )
    scored = clv.score_customers(
        summary, bgnbd, gamma_gamma, config.horizon_months, config.monthly_discount_rate
    )
    tier_counts = {t: int((scored["clv_tier"] == t).sum()) for t, _ in clv.TIER_SHARES}
    log_likelihood = clv.bgnbd_log_likelihood(
        bgnbd, summary["frequency"], summary["recency_days"], summary["t_days"]
    )
    figure = plots.clv_by_tier_figure(scored)
    plot_path = settings.reports / "clv_by_tier.png"
    figure.savefig(plot_path, dpi=100)

    experiment_id = mlflow_meta.experiment_id(CLV_EXPERIMENT)
    with mlflow.start_run(run_name=f"clv {as_of}") as run:
        mlflow.log_params(model.params_dict() | {"holdout_days": config.holdout_days, "time_unit": "day"})
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
            dagster_run_id=context.run.run_id,
            asset_key=context.asset_key.to_user_string(),
            warehouse=f"duckdb://{warehouse_path}",
            name="clv_customer_summary",
        )
        mlflow.log_figure(figure, "clv_by_tier.png")
        mlflow.log_dict(tier_counts, "tier_counts.json")
        _log_clv_model(model)
    version = registry.register(run.info.run_id, "model", CLV_MODEL_NAME)
    promoted, reason = registry.promote_if_better(
        CLV_MODEL_NAME, version, PROMOTION_METRIC, higher_is_better=False, margin=config.promotion_margin
    )
    context.log.info(reason)

    scored["model_version"] = version
    scored["scored_at"] = datetime.now().replace(microsecond=0)
    columns = ", ".join(f"cast({name} as {sql_type}) as {name}" for name, sql_type, _ in CLV_COLUMNS)
    with warehouse.connect() as con:
        con.register("_clv_scored", scored)
        try:
            con.execute(f"create or replace table ml.clv as select {columns} from _clv_scored")
        finally:
            con.unregister("_clv_scored")

    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scored),
            "as_of": str(as_of),
            "params": {k: round(v, 6) for k, v in (asdict(bgnbd) | asdict(gamma_gamma)).items()},
            "tier_counts": tier_counts,
            "mean_p_alive": float(scored["p_alive"].mean()),
            "total_clv": float(scored["clv"].sum()),
            PROMOTION_METRIC: holdout[PROMOTION_METRIC],
            "holdout": {k: v for k, v in holdout.items() if k != PROMOTION_METRIC},
            "fit_seconds": fit_seconds,
            **mlflow_meta.run_metadata(experiment_id, run.info.run_id),
            "model_version": version,
            "promoted": promoted,
            "promotion": reason,
            "plot": dg.MetadataValue.path(str(plot_path)),
        }
    )


@dg.asset_check(
    asset=CLV_KEY,
    name="clv_scores_valid",
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="One row per customer of int_purchases_unioned, p_alive in [0, 1], clv >= 0, no nulls.",
)
def clv_scores_valid(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    null_checks = " + ".join(f"count(*) filter (where {name} is null)" for name, _, _ in CLV_COLUMNS)
    with warehouse.connect(read_only=True) as con:
        rows, customers, nulls, bad_p_alive, negative_clv = con.execute(
            f"""
            select count(*), count(distinct customer_id), {null_checks},
                   count(*) filter (where p_alive < 0 or p_alive > 1),
                   count(*) filter (where clv < 0)
            from ml.clv
            """
        ).fetchone()
        missing, unknown = con.execute(
            f"""
            with source as (select distinct customer_id from {PURCHASES_TABLE} where customer_id is not null)
            select (select count(*) from source where customer_id not in (select customer_id from ml.clv)),
                   (select count(*) from ml.clv where customer_id not in (select customer_id from source))
            """
        ).fetchone()
    failures = {
        "duplicate_rows": rows - customers,
        "customers_missing": missing,
        "customers_unknown": unknown,
        "null_values": nulls,
        "p_alive_out_of_range": bad_p_alive,
        "negative_clv": negative_clv,
    }
    return dg.AssetCheckResult(
        passed=not any(failures.values()), metadata={"rows": rows, **{k: int(v) for k, v in failures.items()}}
    )


# Weekly units per category on a full category x week grid (weeks without sales are 0). Only
# whole weeks count: the partial first and last weeks of the data would look like slumps.
WEEKLY_UNITS_SQL = f"""
with lines as (
    select coalesce(category, 'uncategorised') as category, cast(purchased_at as date) as day, quantity
    from {PURCHASE_LINES_TABLE}
),
bounds as (
    select
        cast(date_trunc('week', min(day) + 6) as date) as first_week,
        cast(date_trunc('week', max(day) + 1) as date) - 7 as last_week
    from lines
),
weeks as (
    select cast(week_start as date) as week_start
    from bounds, range(first_week, last_week + 1, interval 7 day) as r(week_start)
),
categories as (
    select distinct category from lines
),
sold as (
    select category, cast(date_trunc('week', day) as date) as week_start, sum(quantity) as units
    from lines group by all
),
final as (
    select c.category, w.week_start, coalesce(s.units, 0)::double as units
    from categories c cross join weeks w left join sold s using (category, week_start)
)
select * from final order by category, week_start
"""


@dg.asset(
    key=DEMAND_KEY,
    deps=[get_asset_key_for_model([dbt_models], "int_purchase_lines_unioned")],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python"},
    description="Weekly units per product category for the next weeks, with a 90% interval, "
    "backtested against seasonal-naive.",
    metadata={"dagster/column_schema": mlflow_meta.column_schema(DEMAND_COLUMNS)},
)
def demand_forecast(
    context: dg.AssetExecutionContext, config: DemandForecastConfig, warehouse: WarehouseResource
):
    settings = get_settings().ensure_dirs()
    with warehouse.connect(read_only=True) as con:
        history = con.execute(WEEKLY_UNITS_SQL).df()
    if history.empty:
        raise dg.Failure(f"{PURCHASE_LINES_TABLE} has no whole week of sales: nothing to forecast")
    history["week_start"] = pd.to_datetime(history["week_start"])
    predicted = forecast.forecast(history, horizon=config.horizon_weeks)
    predicted["model"] = predicted["category"].map(forecast.chosen_models(history, config.horizon_weeks))

    weeks = history["week_start"].nunique()
    if weeks > config.backtest_folds * config.horizon_weeks:
        report = forecast.backtest_report(history, horizon=config.horizon_weeks, folds=config.backtest_folds)
        backtest_meta = {
            model: {
                "mase": round(float(row.mase), 4),
                "wape": round(float(row.wape), 2),
                "mape": round(float(row.mape), 2),
            }
            for model, row in report["overall"].iterrows()
        }
        backtest_md = dg.MetadataValue.md(
            "| model | MASE | WAPE (%) | MAPE (%) |\n|---|---:|---:|---:|\n"
            + "".join(
                f"| {m} | {v['mase']:.3f} | {v['wape']:.1f} | {v['mape']:.1f} |\n"
                for m, v in backtest_meta.items()
            )
        )
        by_category = report["categories"].pivot(index="category", columns="model", values="wape")
        category_md = dg.MetadataValue.md(
            "WAPE (%) per category, rolling backtest\n\n| category | forecast | seasonal-naive |\n|---|---:|---:|\n"
            + "".join(
                f"| {c} | {row['forecast']:.1f} | {row['seasonal_naive']:.1f} |\n"
                for c, row in by_category.iterrows()
            )
        )
    else:
        context.log.warning(
            f"{weeks} weeks of history: too short for a {config.backtest_folds}-fold backtest"
        )
        backtest_meta, backtest_md = {}, dg.MetadataValue.md("history too short for a backtest")
        category_md = backtest_md

    plot_path = settings.reports / "demand_forecast.png"
    forecast.plot_forecast(history, predicted).savefig(plot_path, dpi=90)
    with warehouse.connect() as con:
        con.register("_demand_forecast", predicted)
        try:
            con.execute(
                "create or replace table ml.demand_forecast as select category::varchar as category, "
                "week_start::date as week_start, units_forecast::double as units_forecast, "
                "lower::double as lower, upper::double as upper, model::varchar as model "
                "from _demand_forecast order by category, week_start"
            )
        finally:
            con.unregister("_demand_forecast")

    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(predicted),
            "categories": int(predicted["category"].nunique()),
            "history_weeks": int(weeks),
            "last_history_week": str(history["week_start"].max().date()),
            "backtest": backtest_meta,
            "backtest_table": backtest_md,
            "backtest_by_category": category_md,
            "models_chosen": predicted.groupby("category")["model"].first().to_dict(),
            "plot": dg.MetadataValue.path(str(plot_path)),
        }
    )


defs = dg.Definitions(assets=[clv_scores, demand_forecast], asset_checks=[clv_scores_valid])
