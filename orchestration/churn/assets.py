"""Churn risk as Dagster assets: train (``ml/churn_model``) and score (``ml/churn_scores``).

``ml/churn_model`` reads the point-in-time feature snapshots that dbt builds in
``features.churn_features`` and calls ``ml.churn.train``: a HistGradientBoosting model
(calibrated on two cross-fitted halves of its training rows, or on one held-out slice above
``ml.churn.CROSS_FIT_MAX_ROWS``) fitted on the earlier snapshots and
validated on the latest snapshot whose 90-day label window is over (with ``kinds`` naming more
than one estimator, the best by validation ROC-AUC); it is refitted on every labelled snapshot,
logged to MLflow with its metrics, plots, signature and lineage, and registered as a new version of ``churn`` with alias ``challenger``. The blocking
check ``churn_champion_gate`` (orchestration/model_lifecycle.py) promotes it.

``ml/churn_scores`` scores every customer at the latest as-of date with ``models:/churn@champion``,
recomputing only customers whose feature row or champion version changed
(orchestration/incremental_scoring.py).
"""

import time
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field
from threadpoolctl import threadpool_limits

from c360.settings import get_settings
from c360.warehouse import write_frame
from ml import churn, registry
from orchestration import incremental_scoring, metadata
from orchestration.dbt.assets import dbt_key
from orchestration.model_lifecycle import lineage, model_metadata
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

CHURN_MODEL_KEY = dg.AssetKey(["ml", "churn_model"])
CHURN_SCORES_KEY = dg.AssetKey(["ml", "churn_scores"])
FEATURES_KEY = dbt_key("churn_features")
FEATURES_TABLE = "features.churn_features"
SCORES_TABLE = "ml.churn_scores"
CHURN_EXPERIMENT = "churn"
PROMOTION_METRIC = churn.VALIDATION_METRIC

SCORE_COLUMNS = [
    ("customer_id", "varchar", "Customer id (marts.identity_map)"),
    ("churn_probability", "double", "Probability of no purchase in the 90 days from the as-of date"),
    ("risk_band", "varchar", "high (p >= 0.5), medium (p >= 0.2) or low (ml.churn.RISK_BANDS)"),
    ("model_version", "bigint", "Version of the registered MLflow model `churn` (the champion)"),
    ("scored_at", "timestamp", "When the row was scored"),
    ("as_of_date", "date", "The as-of date of the features scored"),
    incremental_scoring.HASH_COLUMN,
]


class ChurnTrainingConfig(dg.Config):
    validation_as_of: str | None = Field(
        default=None,
        description="As-of date (YYYY-MM-DD) of the validation snapshot; default the latest "
        "snapshot whose label window is over. Training uses snapshots at least the horizon before it.",
    )
    kinds: list[str] = Field(
        default=list(churn.DEFAULT_KINDS),
        description=f"Estimators compared (ml.churn.estimator kinds, of {list(churn.KINDS)}).",
    )
    refit_on_all_labelled: bool = Field(
        default=True,
        description="Refit the chosen estimator on every labelled snapshot before logging it "
        "(validation metrics still come from the fit that did not see the validation snapshot).",
    )
    promotion_margin: float = Field(
        default=0.005, description="Validation ROC-AUC gain over the champion needed to replace it."
    )
    min_validation_auc: float = Field(
        default=0.6, description="A challenger below this validation ROC-AUC is never promoted."
    )
    random_state: int = Field(default=0, description="Seed of the estimators.")
    max_training_rows: int | None = Field(
        default=500_000,
        description="Fit on at most this many rows of the training (and refit) snapshots, a uniform "
        "random sample beyond it (ml.churn.cap_rows); validation always scores the whole snapshot. "
        "None fits on every row.",
    )

    def options(self) -> churn.TrainingOptions:
        return churn.TrainingOptions(
            validation_as_of=self.validation_as_of,
            kinds=tuple(self.kinds),
            refit_on_all_labelled=self.refit_on_all_labelled,
            random_state=self.random_state,
            max_training_rows=self.max_training_rows,
            threads=get_settings().training_threads,
        )


def read_features(con, latest_only: bool = False) -> "pd.DataFrame":
    """The feature snapshots (every one, or only the latest for scoring: at 1M customers the
    other four are 4M rows that scoring would read for nothing)."""
    import pandas as pd

    where = f"where as_of_date = (select max(as_of_date) from {FEATURES_TABLE})" if latest_only else ""
    df = con.execute(f"select * from {FEATURES_TABLE} {where} order by as_of_date, customer_id").df()
    df[churn.AS_OF] = pd.to_datetime(df[churn.AS_OF])
    return df


def _comparison_table(reports: dict) -> dg.MetadataValue:
    return dg.MetadataValue.md(
        "| model | ROC-AUC | PR-AUC | Brier | ECE | lift@10% | capture@10% |\n|---|---:|---:|---:|---:|---:|---:|\n"
        + "".join(
            f"| {kind} | {r['roc_auc']:.4f} | {r['pr_auc']:.4f} | {r['brier']:.4f} | {r['ece']:.4f} "
            f"| {r['lift_top_decile']:.2f} | {r['capture_top_decile']:.3f} |\n"
            for kind, r in reports.items()
        )
    )


@dg.asset(
    key=CHURN_MODEL_KEY,
    deps=[FEATURES_KEY],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"mlflow", "scikitlearn", "python"},
    description="Churn model (no purchase in the next 90 days): HistGradientBoosting calibrated on "
    "two cross-fitted halves (one held-out slice above 100k rows), validated on a time split of "
    "features.churn_features, refitted on every labelled snapshot, logged to MLflow and registered "
    "as `churn` (@challenger).",
)
def churn_model(context: dg.AssetExecutionContext, config: ChurnTrainingConfig, warehouse: WarehouseResource):
    import mlflow

    options = config.options()
    with warehouse.reader() as con:
        features_df = read_features(con)
    if reason := churn.too_little_to_train(features_df):
        # No version is registered, so the gate passes and ml/churn_scores says there is no champion.
        return metadata.skipped(context, f"no model trained: {reason}", feature_rows=len(features_df))
    try:
        result = churn.train(features_df, options)
    except ValueError as exc:
        raise dg.Failure(f"{FEATURES_TABLE}: {exc}") from exc
    if result["dropped_features"]:
        context.log.warning(
            f"features left out (empty or constant in the training snapshots): {result['dropped_features']}"
        )
    best = result["best_kind"]
    report = result["metrics"][best]
    figures, importance = churn.evaluation_figures(result, options.threads)
    train_dates = sorted(str(d.date()) for d in result["train"][churn.AS_OF].unique())
    labelled_dates = sorted(str(d.date()) for d in result["labelled"][churn.AS_OF].unique())
    valid_as_of = str(result["valid_as_of"].date())

    experiment_id = registry.use_experiment(CHURN_EXPERIMENT)
    with mlflow.start_run(run_name=f"churn {best} valid {valid_as_of}") as run:
        mlflow.log_params(
            {
                "best_kind": best,
                "kinds": ",".join(config.kinds),
                "calibration": churn.CALIBRATION_METHOD,
                "horizon_days": churn.HORIZON_DAYS,
                "train_as_of_dates": ",".join(train_dates),
                "validation_as_of": valid_as_of,
                "refit_on_all_labelled": config.refit_on_all_labelled,
                "refit_as_of_dates": ",".join(labelled_dates) if config.refit_on_all_labelled else "",
                "promotion_metric": PROMOTION_METRIC,
                "promotion_margin": config.promotion_margin,
                "min_validation_auc": config.min_validation_auc,
                "random_state": config.random_state,
                "training_threads": options.threads,
                "max_training_rows": config.max_training_rows,
                "features_used": len(result["features"]),
                "features_dropped": ",".join(f"{k}:{v}" for k, v in result["dropped_features"].items()),
            }
        )
        # The chosen model's validation metrics unprefixed (the promotion gate reads roc_auc),
        # every candidate's with its kind as prefix.
        mlflow.log_metrics(
            {
                **report,
                **{
                    f"{kind}_{name}": value
                    for kind, rep in result["metrics"].items()
                    for name, value in rep.items()
                },
                "train_rows": len(result["train"]),
                "labelled_rows": len(result["labelled"]),
                "train_rows_available": result["available"]["train"],
                "labelled_rows_available": result["available"]["labelled"],
                "validation_seconds": result["validation_seconds"],
                "refit_seconds": result["refit_seconds"],
            }
        )
        registry.log_lineage(
            result["labelled"],
            source_table=FEATURES_TABLE,
            as_of=labelled_dates[-1],
            targets=churn.LABEL,
            name="churn_features_labelled",
            **lineage(context, warehouse),
        )
        for name, figure in figures.items():
            mlflow.log_figure(figure, name)
        mlflow.log_dict({k: float(v) for k, v in importance.items()}, "feature_importance.json")
        churn.log_churn_model(result["final_model"], result["labelled"])
    version = registry.register_challenger(run.info.run_id, churn.MODEL_NAME)
    context.log.info(
        f"churn v{version} ({best}) validation {PROMOTION_METRIC}={report[PROMOTION_METRIC]:.4f}: "
        f"{metadata.run_url(experiment_id, run.info.run_id)}"
    )
    return dg.MaterializeResult(
        metadata={
            **model_metadata(version, config.promotion_margin, config.min_validation_auc),
            "best_kind": best,
            PROMOTION_METRIC: report[PROMOTION_METRIC],
            "validation": {k: round(float(v), 5) for k, v in report.items()},
            "comparison": _comparison_table(result["metrics"]),
            "validation_as_of": valid_as_of,
            "train_as_of_dates": train_dates,
            "train_rows": len(result["train"]),
            "labelled_rows": len(result["labelled"]),
            "rows_available": result["available"],
            "training_seconds": round(result["validation_seconds"] + result["refit_seconds"], 2),
            "min_validation_auc": config.min_validation_auc,
            "features_used": len(result["features"]),
            # Empty or constant on this company's data (a source it does not have): named, not hidden.
            "features_dropped": result["dropped_features"],
            **metadata.run_metadata(experiment_id, run.info.run_id),
        }
    )


@dg.asset(
    key=CHURN_SCORES_KEY,
    deps=[CHURN_MODEL_KEY, FEATURES_KEY],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "mlflow", "python"},
    description="Churn probability and risk band of every known customer at the latest as-of date, "
    "scored by `models:/churn@champion`.",
    metadata={"dagster/column_schema": metadata.column_schema(SCORE_COLUMNS)},
)
def churn_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    import mlflow
    import pandas as pd

    registry.configure()
    champion = registry.champion_info(churn.MODEL_NAME)
    if champion is None:
        # customer_360 and the retention audience read ml.churn_scores: an empty table keeps them
        # building (without churn values) when no model could be trained on this data.
        with warehouse.connect() as con:
            write_frame(con, SCORES_TABLE, pd.DataFrame({c[0]: [] for c in SCORE_COLUMNS}), SCORE_COLUMNS)
        why = metadata.skip_reason(context, CHURN_MODEL_KEY) or "materialize ml/churn_model and its gate"
        return metadata.skipped(context, f"`{churn.MODEL_NAME}` has no @champion ({why})")
    with warehouse.reader() as con:
        features_df = read_features(con, latest_only=True)
    # The whole feature row (as-of date included, which the scores carry) decides a rescore.
    hashes = incremental_scoring.row_hashes(features_df)
    with warehouse.connect(read_only=True) as con:
        plan = incremental_scoring.plan(con, SCORES_TABLE, hashes, champion["version"])
    todo = features_df[features_df["customer_id"].astype(str).isin(plan.rescore)]
    scoring_seconds = 0.0
    fresh = pd.DataFrame({c[0]: [] for c in SCORE_COLUMNS})
    if len(todo):
        model = mlflow.pyfunc.load_model(f"models:/{churn.MODEL_NAME}@{registry.CHAMPION}")
        with threadpool_limits(limits=get_settings().training_threads):
            started = time.perf_counter()
            fresh = churn.score_latest(model, todo)
            scoring_seconds = time.perf_counter() - started
    scored = incremental_scoring.merge_fresh(
        plan, fresh, hashes, champion["version"], features_df["customer_id"]
    )
    scored["as_of_date"] = pd.to_datetime(scored["as_of_date"])  # dates read back, dates scored
    with warehouse.connect() as con:
        write_frame(con, SCORES_TABLE, scored, SCORE_COLUMNS)
    bands = scored["risk_band"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scored),
            "as_of_date": str(scored["as_of_date"].max()) if len(scored) else None,
            "model_version": champion["version"],
            "risk_bands": {band: int(bands.get(band, 0)) for band, _ in churn.RISK_BANDS},
            "mean_churn_probability": float(scored["churn_probability"].mean()) if len(scored) else None,
            **incremental_scoring.rows_metadata(plan, len(fresh), len(plan.previous)),
            "scoring_seconds": round(scoring_seconds, 3),
            "scoring_customers_per_second": round(len(fresh) / max(scoring_seconds, 1e-9)),
        }
    )
