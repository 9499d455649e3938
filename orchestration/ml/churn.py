"""Churn risk as Dagster assets: train, gate, score.

``ml/churn_model`` reads the point-in-time feature snapshots that dbt builds in
``features.churn_features``, fits a logistic-regression baseline and a calibrated
HistGradientBoosting model (``ml.churn.estimator``) on the earlier snapshots and validates them
on the latest snapshot whose 90-day label window is over. The better one by validation ROC-AUC
is refitted on every labelled snapshot (the validated settings, plus the most recent behaviour,
which is closest to the scoring date) and logged to MLflow with its metrics, plots, signature
and lineage, then registered as a new version of ``churn`` with alias ``challenger``.

The blocking check ``churn_champion_gate`` is the promotion gate: the challenger becomes
``champion`` when there is no champion yet or when its validation ROC-AUC beats the champion's
by ``promotion_margin``; a challenger under ``min_validation_auc`` is never promoted. The check
fails (and blocks scoring) only when no acceptable champion is left.

``ml/churn_scores`` scores every customer at the latest as-of date with ``models:/churn@champion``.
"""

import os
import time
from datetime import datetime

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_dbt import get_asset_key_for_model
from mlflow import MlflowClient
from pydantic import Field
from threadpoolctl import threadpool_limits

from c360.settings import get_settings
from ml import churn, plots, registry
from orchestration.dbt.assets import dbt_models
from orchestration.ml import mlflow_meta
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

CHURN_MODEL_KEY = dg.AssetKey(["ml", "churn_model"])
CHURN_SCORES_KEY = dg.AssetKey(["ml", "churn_scores"])
FEATURES_KEY = get_asset_key_for_model([dbt_models], "churn_features")
FEATURES_TABLE = "features.churn_features"
SCORES_TABLE = "ml.churn_scores"
CHURN_EXPERIMENT = "churn"
PROMOTION_METRIC = churn.VALIDATION_METRIC
# Two cores shared by the warehouse pool and the UI: more BLAS/OpenMP threads only oversubscribe.
TRAINING_THREADS = int(os.environ.get("C360_TRAINING_THREADS", "2"))
IMPORTANCE_SAMPLE = 5000

SCORE_COLUMNS = [
    ("customer_id", "varchar", "Customer id (marts.identity_map)"),
    ("churn_probability", "double", "Probability of no purchase in the 90 days from the as-of date"),
    ("risk_band", "varchar", "high (p >= 0.5), medium (p >= 0.2) or low (ml.churn.RISK_BANDS)"),
    ("model_version", "bigint", "Version of the registered MLflow model `churn` (the champion)"),
    ("scored_at", "timestamp", "When the row was scored"),
    ("as_of_date", "date", "The as-of date of the features scored"),
]


class ChurnTrainingConfig(dg.Config):
    validation_as_of: str | None = Field(
        default=None,
        description="As-of date (YYYY-MM-DD) of the validation snapshot; default the latest "
        "snapshot whose label window is over. Training uses snapshots at least the horizon before it.",
    )
    kinds: list[str] = Field(
        default=list(churn.KINDS), description="Estimators compared (ml.churn.estimator kinds)."
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


def read_features(con, latest_only: bool = False) -> pd.DataFrame:
    """The feature snapshots (every one, or only the latest for scoring: at 1M customers the
    other four are 4M rows that scoring would read for nothing)."""
    where = f"where as_of_date = (select max(as_of_date) from {FEATURES_TABLE})" if latest_only else ""
    df = con.execute(f"select * from {FEATURES_TABLE} {where} order by as_of_date, customer_id").df()
    df[churn.AS_OF] = pd.to_datetime(df[churn.AS_OF])
    return df


def split_snapshots(features_df: pd.DataFrame, validation_as_of: str | None = None):
    """(train, valid, labelled, valid_as_of): validate on the latest labelled snapshot (or the
    one asked for), train on the snapshots whose label window ends by then."""
    labelled = features_df[features_df[churn.LABEL].notna()].reset_index(drop=True)
    if labelled.empty:
        raise ValueError(f"{FEATURES_TABLE} has no labelled snapshot: the data is shorter than the horizon")
    valid_as_of = pd.Timestamp(validation_as_of) if validation_as_of else labelled[churn.AS_OF].max()
    train_cutoff = valid_as_of - pd.Timedelta(days=churn.HORIZON_DAYS)
    train, valid = churn.time_split(labelled, train_cutoff, valid_as_of)
    return train, valid, labelled, valid_as_of


def train_churn(features_df: pd.DataFrame, config: ChurnTrainingConfig) -> dict:
    """Fit, validate and (optionally) refit; pure apart from CPU. Returns the ``train_and_evaluate``
    dict plus ``final_model``, ``train``, ``valid``, ``labelled``, ``valid_as_of``, timings."""
    train, valid, labelled, valid_as_of = split_snapshots(features_df, config.validation_as_of)
    available = {"train": len(train), "labelled": len(labelled)}
    train = churn.cap_rows(train, config.max_training_rows, config.random_state)
    labelled = churn.cap_rows(labelled, config.max_training_rows, config.random_state)
    with threadpool_limits(limits=TRAINING_THREADS):
        started = time.perf_counter()
        result = churn.train_and_evaluate(
            train, valid, kinds=tuple(config.kinds), random_state=config.random_state
        )
        result["validation_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        if config.refit_on_all_labelled:
            final = churn.estimator(result["best_kind"], random_state=config.random_state)
            final.fit(churn.feature_matrix(labelled), churn.labels(labelled))
        else:
            final = result["best_model"]
        result["refit_seconds"] = time.perf_counter() - started
    result.update(
        final_model=final, train=train, valid=valid, labelled=labelled, valid_as_of=valid_as_of, available=available
    )
    return result


def _evaluation_figures(result: dict) -> dict:
    y_valid = churn.labels(result["valid"])
    scores = result["valid_scores"]
    best = result["best_kind"]
    # Permutation importance on a fixed sample: the ranking is stable, and features x 3 re-scorings
    # of the full validation set would cost more than the training.
    sample = result["valid"].sample(n=min(len(result["valid"]), IMPORTANCE_SAMPLE), random_state=0)
    with threadpool_limits(limits=TRAINING_THREADS):
        importance = plots.feature_importance(
            result["best_model"], churn.feature_matrix(sample), churn.labels(sample), n_repeats=3
        )
    return {
        "roc.png": plots.roc_figure(y_valid, scores),
        "pr.png": plots.pr_figure(y_valid, scores),
        "calibration.png": plots.calibration_figure(y_valid, scores),
        "lift.png": plots.gains_figure(y_valid, scores),
        "feature_importance.png": plots.importance_figure(
            importance, title=f"Permutation importance ({best}, validation ROC-AUC)"
        ),
    }, importance


@dg.asset(
    key=CHURN_MODEL_KEY,
    deps=[FEATURES_KEY],
    group_name="ml",
    pool=WAREHOUSE_POOL,
    kinds={"mlflow", "scikitlearn", "python"},
    description="Churn model (no purchase in the next 90 days): logistic-regression baseline vs "
    "calibrated HistGradientBoosting on a time split of features.churn_features; the better one is "
    "refitted on every labelled snapshot, logged to MLflow and registered as `churn` (@challenger).",
)
def churn_model(context: dg.AssetExecutionContext, config: ChurnTrainingConfig, warehouse: WarehouseResource):
    settings = get_settings().ensure_dirs()
    warehouse_path = warehouse.path or str(settings.warehouse)
    with warehouse.reader() as con:
        features_df = read_features(con)
    try:
        result = train_churn(features_df, config)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    best = result["best_kind"]
    report = result["metrics"][best]
    figures, importance = _evaluation_figures(result)
    train_dates = sorted(str(d.date()) for d in result["train"][churn.AS_OF].unique())
    labelled_dates = sorted(str(d.date()) for d in result["labelled"][churn.AS_OF].unique())
    valid_as_of = str(result["valid_as_of"].date())

    experiment_id = mlflow_meta.experiment_id(CHURN_EXPERIMENT)
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
                "training_threads": TRAINING_THREADS,
                "max_training_rows": config.max_training_rows,
            }
        )
        # The chosen model's validation metrics unprefixed (the promotion gate reads roc_auc),
        # every candidate's with its kind as prefix.
        mlflow.log_metrics(
            {
                **report,
                **{f"{kind}_{name}": value for kind, rep in result["metrics"].items() for name, value in rep.items()},
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
            dagster_run_id=context.run.run_id,
            asset_key=context.asset_key.to_user_string(),
            warehouse=f"duckdb://{warehouse_path}",
            targets=churn.LABEL,
            name="churn_features_labelled",
        )
        for name, figure in figures.items():
            mlflow.log_figure(figure, name)
        mlflow.log_dict({k: float(v) for k, v in importance.items()}, "feature_importance.json")
        churn.log_churn_model(result["final_model"], result["labelled"])
    version = registry.register(run.info.run_id, "model", churn.MODEL_NAME)
    registry.set_alias(churn.MODEL_NAME, registry.CHALLENGER, version)
    run_url = mlflow_meta.run_url(experiment_id, run.info.run_id)
    context.log.info(f"churn v{version} ({best}) validation {PROMOTION_METRIC}={report[PROMOTION_METRIC]:.4f}: {run_url}")

    comparison = "| model | ROC-AUC | PR-AUC | Brier | ECE | lift@10% | capture@10% |\n|---|---:|---:|---:|---:|---:|---:|\n" + "".join(
        f"| {kind} | {r['roc_auc']:.4f} | {r['pr_auc']:.4f} | {r['brier']:.4f} | {r['ece']:.4f} "
        f"| {r['lift_top_decile']:.2f} | {r['capture_top_decile']:.3f} |\n"
        for kind, r in result["metrics"].items()
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "best_kind": best,
            PROMOTION_METRIC: report[PROMOTION_METRIC],
            "validation": {k: round(float(v), 5) for k, v in report.items()},
            "comparison": dg.MetadataValue.md(comparison),
            "validation_as_of": valid_as_of,
            "train_as_of_dates": train_dates,
            "train_rows": len(result["train"]),
            "labelled_rows": len(result["labelled"]),
            "rows_available": result["available"],
            "training_seconds": round(result["validation_seconds"] + result["refit_seconds"], 2),
            "promotion_margin": config.promotion_margin,
            "min_validation_auc": config.min_validation_auc,
            **mlflow_meta.run_metadata(experiment_id, run.info.run_id),
        }
    )


def apply_champion_gate(version: int, margin: float, min_auc: float) -> dict:
    """Promote challenger ``version`` if it clears ``min_auc`` and beats the champion by
    ``margin`` (``registry.promote_if_better``). Returns what happened, for the check."""
    client = MlflowClient()
    candidate = client.get_model_version(churn.MODEL_NAME, str(version))
    value = client.get_run(candidate.run_id).data.metrics.get(PROMOTION_METRIC, float("nan"))
    if not value >= min_auc:
        registry.set_alias(churn.MODEL_NAME, registry.CHALLENGER, version)
        promoted, reason = False, f"v{version} {PROMOTION_METRIC}={value:.4f} is under the floor {min_auc}"
    else:
        promoted, reason = registry.promote_if_better(
            churn.MODEL_NAME, version, PROMOTION_METRIC, higher_is_better=True, margin=margin
        )
    champion = registry.champion_info(churn.MODEL_NAME)
    champion_auc = champion["metrics"].get(PROMOTION_METRIC, float("nan")) if champion else float("nan")
    return {
        "challenger_version": int(version),
        "challenger_" + PROMOTION_METRIC: float(value),
        "promoted": promoted,
        "reason": reason,
        "champion_version": champion["version"] if champion else None,
        "champion_" + PROMOTION_METRIC: float(champion_auc),
        "has_acceptable_champion": bool(champion) and champion_auc >= min_auc,
    }


@dg.asset_check(
    asset=CHURN_MODEL_KEY,
    name="churn_champion_gate",
    blocking=True,
    description="Promotion gate: the new `churn` version becomes @champion only if its validation "
    "ROC-AUC clears the floor and beats the champion's by the margin (config of ml/churn_model). "
    "Fails, blocking scoring, when no acceptable champion remains.",
)
def churn_champion_gate(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(CHURN_MODEL_KEY)
    if event is None or event.asset_materialization is None:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "ml/churn_model was never materialized"})
    meta = event.asset_materialization.metadata
    mlflow_meta.configure_mlflow()
    outcome = apply_champion_gate(
        int(meta["model_version"].value), float(meta["promotion_margin"].value), float(meta["min_validation_auc"].value)
    )
    context.log.info(outcome["reason"])
    return dg.AssetCheckResult(
        passed=outcome["has_acceptable_champion"],
        metadata={k: v for k, v in outcome.items() if v is not None},
    )


def score_latest(model, features_df: pd.DataFrame) -> pd.DataFrame:
    """Churn probability and risk band of every customer at the latest as-of date."""
    latest = features_df[features_df[churn.AS_OF] == features_df[churn.AS_OF].max()]
    p = np.clip(np.asarray(model.predict(churn.feature_matrix(latest)), dtype=float).ravel(), 0.0, 1.0)
    return pd.DataFrame(
        {
            "customer_id": latest["customer_id"].to_numpy(),
            "churn_probability": p,
            "risk_band": [churn.risk_band(x) for x in p],
            "as_of_date": latest[churn.AS_OF].dt.date.to_numpy(),
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
    metadata={"dagster/column_schema": mlflow_meta.column_schema(SCORE_COLUMNS)},
)
def churn_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    mlflow_meta.configure_mlflow()
    champion = registry.champion_info(churn.MODEL_NAME)
    if champion is None:
        raise dg.Failure(f"`{churn.MODEL_NAME}` has no @champion: materialize ml/churn_model and its gate first")
    model = mlflow.pyfunc.load_model(f"models:/{churn.MODEL_NAME}@{registry.CHAMPION}")
    with warehouse.reader() as con:
        features_df = read_features(con, latest_only=True)
    with threadpool_limits(limits=TRAINING_THREADS):
        started = time.perf_counter()
        scored = score_latest(model, features_df)
        scoring_seconds = time.perf_counter() - started
    scored["model_version"] = champion["version"]
    scored["scored_at"] = datetime.now().replace(microsecond=0)
    columns = ", ".join(f"cast({name} as {sql_type}) as {name}" for name, sql_type, _ in SCORE_COLUMNS)
    with warehouse.connect() as con:
        con.execute("create schema if not exists ml")
        con.register("_churn_scored", scored)
        try:
            con.execute(f"create or replace table {SCORES_TABLE} as select {columns} from _churn_scored")
        finally:
            con.unregister("_churn_scored")
    bands = scored["risk_band"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scored),
            "as_of_date": str(scored["as_of_date"].max()) if len(scored) else None,
            "model_version": champion["version"],
            "risk_bands": {band: int(bands.get(band, 0)) for band, _ in churn.RISK_BANDS},
            "mean_churn_probability": float(scored["churn_probability"].mean()) if len(scored) else None,
            "scoring_seconds": round(scoring_seconds, 3),
            "scoring_customers_per_second": round(len(scored) / max(scoring_seconds, 1e-9)),
        }
    )


@dg.asset_check(
    asset=CHURN_SCORES_KEY,
    name="churn_scores_valid",
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="One row per known customer (non-anonymous in the identity graph), probabilities "
    "in [0, 1], no nulls.",
)
def churn_scores_valid(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    null_checks = " + ".join(f"count(*) filter (where {name} is null)" for name, _, _ in SCORE_COLUMNS)
    with warehouse.connect(read_only=True) as con:
        rows, customers, nulls, out_of_range = con.execute(
            f"""
            select count(*), count(distinct customer_id), {null_checks},
                   count(*) filter (where churn_probability < 0 or churn_probability > 1)
            from {SCORES_TABLE}
            """
        ).fetchone()
        missing = con.execute(
            f"""
            select count(distinct customer_id) from intermediate.int_identity_records_matched
            where not is_anonymous and customer_id not in (select customer_id from {SCORES_TABLE})
            """
        ).fetchone()[0]
    failures = {
        "duplicate_rows": rows - customers,
        "customers_missing": missing,
        "null_values": nulls,
        "probability_out_of_range": out_of_range,
    }
    return dg.AssetCheckResult(
        passed=not any(failures.values()), metadata={"rows": rows, **{k: int(v) for k, v in failures.items()}}
    )


defs = dg.Definitions(
    assets=[churn_model, churn_scores], asset_checks=[churn_champion_gate, churn_scores_valid]
)
