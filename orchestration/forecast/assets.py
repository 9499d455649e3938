"""Weekly demand per product category, as a Dagster asset.

``ml/demand_forecast``: weekly units per category (dbt: features.category_weekly_units), forecast with ``ml.forecast``
(per category the model its own recent backtest chose) and backtested against seasonal-naive
(MASE, WAPE, MAPE overall and per category).
"""

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from c360.settings import get_settings
from c360.warehouse import write_frame
from orchestration import metadata
from orchestration.dbt.assets import dbt_key
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

DEMAND_KEY = dg.AssetKey(["ml", "demand_forecast"])
WEEKLY_UNITS_VIEW = "features.category_weekly_units"

DEMAND_COLUMNS = [
    ("category", "varchar", "Product category"),
    ("week_start", "date", "Monday of the forecast week"),
    ("units_forecast", "double", "Forecast units"),
    ("lower", "double", "Lower bound of the 90% interval"),
    ("upper", "double", "Upper bound of the 90% interval"),
    ("model", "varchar", "Model chosen by the category's own backtest (ml.forecast.choose_model)"),
]


class DemandForecastConfig(dg.Config):
    horizon_weeks: int = Field(default=8, description="Weeks forecast ahead.")
    backtest_folds: int = Field(default=4, description="Rolling-origin folds of `horizon_weeks` each.")


def read_weekly_units(con) -> "pd.DataFrame":
    """The forecast's history (features.category_weekly_units), ``week_start`` as a timestamp."""
    import pandas as pd

    history = con.execute(f"select * from {WEEKLY_UNITS_VIEW} order by category, week_start").df()
    history["week_start"] = pd.to_datetime(history["week_start"])
    return history


@dg.asset(
    key=DEMAND_KEY,
    deps=[dbt_key("category_weekly_units")],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python"},
    description="Weekly units per product category for the next weeks, with a 90% interval, "
    "backtested against seasonal-naive.",
    metadata={"dagster/column_schema": metadata.column_schema(DEMAND_COLUMNS)},
)
def demand_forecast(
    context: dg.AssetExecutionContext, config: DemandForecastConfig, warehouse: WarehouseResource
):
    import pandas as pd

    from ml import forecast

    settings = get_settings().ensure_dirs()
    with warehouse.reader() as con:
        history = read_weekly_units(con)
    if history.empty:
        with warehouse.connect() as con:
            write_frame(
                con, "ml.demand_forecast", pd.DataFrame({c[0]: [] for c in DEMAND_COLUMNS}), DEMAND_COLUMNS
            )
        return metadata.skipped(
            context, f"{WEEKLY_UNITS_VIEW} has no whole week of sales: nothing to forecast"
        )
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
        write_frame(con, "ml.demand_forecast", predicted, DEMAND_COLUMNS, order_by="category, week_start")

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
