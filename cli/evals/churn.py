"""Churn model quality: against the generator's ground truth, or on a held-out period of real data.

Real data has no ground truth (``_truth/`` is absent, or ``--holdout``): the last labelled
snapshot of ``features.churn_features``, whose 90-day label window is the data's last 90 days,
is held out. The champion's estimator kind (as logged with it) is fitted the way ``ml/churn_model``
validates it (``ml.churn.train`` without the refit: earlier snapshots only, empty or constant
features dropped) and scored on the held-out snapshot, next to a recency-only logistic regression
fitted on the same rows: AUC and ECE of both, so a model that does not beat recency shows it.
Target: ``ece <= 0.05`` (and an AUC above the baseline's).

With ground truth (data from ``c360 generate``):

At the end of the data, the champion's scores (``ml.churn_scores``) and a logistic-regression
baseline (refitted here on every labelled snapshot of ``features.churn_features``, the same
data the champion is refitted on) are compared with ``_truth/persons.csv``:
``churned_next_90d`` is what happened, ``churn_prob`` the true probability, whose AUC is the
best any model can reach (``bayes_auc``).

Population: a customer's person is the majority person of its identity records
(``_truth/identity.csv`` joined to ``marts.identity_map``). Customers without a purchase before
the as-of date are left out, as the generator leaves persons without purchases out of its own
``bayes_auc``: their churn is certain by construction and would inflate every AUC.
Targets: ``auc >= bayes_auc - 0.03`` and ``ece <= 0.05``.

``--timing`` also measures, on whatever warehouse C360_HOME points to (e.g. a 1M-customer one),
the training asset's own fit (validation fits plus refit, ``ml.churn.train``)
and the scoring throughput of the refitted model on the latest snapshot, in customers per second.
"""

from __future__ import annotations

from pathlib import Path

import click
import duckdb

AUC_GAP_TARGET = 0.03
ECE_TARGET = 0.05

POPULATION_SQL = """
with truth_identity as (
    select source, source_record_id, nullif(person_id, '') as person_id
    from read_csv($identity, header = true, all_varchar = true)
),
votes as (
    select m.customer_id, t.person_id, count(*) as records
    from truth_identity t join marts.identity_map m using (source, source_record_id)
    where t.person_id is not null
    group by all
),
customer_person as (
    select customer_id, arg_max(person_id, (records, person_id)) as person_id from votes group by customer_id
),
persons as (
    select person_id, cast(churn_prob as double) as churn_prob,
           cast(cast(churned_next_90d as boolean) as integer) as churned
    from read_csv($persons, header = true, all_varchar = true)
),
latest as (
    select * from features.churn_features
    where as_of_date = (select max(as_of_date) from features.churn_features)
)
select l.*, s.churn_probability, p.person_id, p.churn_prob as true_churn_prob, p.churned as true_churned
from latest l
join ml.churn_scores s using (customer_id)
join customer_person c using (customer_id)
join persons p using (person_id)
where l.recency_days is not null
order by l.customer_id
"""


def evaluate(con: duckdb.DuckDBPyConnection, truth_dir: Path) -> dict:
    """AUC, ECE and friends of the champion and the LR baseline against the truth."""
    import pandas as pd

    from ml import churn, metrics

    population = con.execute(
        POPULATION_SQL,
        {"identity": str(truth_dir / "identity.csv"), "persons": str(truth_dir / "persons.csv")},
    ).df()
    if population.empty:
        raise click.ClickException("no scored customer maps to a person of the truth")
    features = con.execute("select * from features.churn_features where churned is not null").df()
    features[churn.AS_OF] = pd.to_datetime(features[churn.AS_OF])
    baseline = churn.estimator("logreg").fit(churn.feature_matrix(features), churn.labels(features))

    y = population["true_churned"].to_numpy()
    p = population["churn_probability"].to_numpy()
    report = metrics.classification_report(y, p)
    baseline_p = churn.predict_churn(baseline, population)
    return {
        "auc": report["roc_auc"],
        "bayes_auc": metrics.roc_auc(y, population["true_churn_prob"].to_numpy()),
        "ece": report["ece"],
        "baseline_auc": metrics.roc_auc(y, baseline_p),
        "baseline_ece": metrics.expected_calibration_error(y, baseline_p),
        "pr_auc": report["pr_auc"],
        "brier": report["brier"],
        "lift_top_decile": report["lift_top_decile"],
        "capture_top_decile": report["capture_top_decile"],
        "churn_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
        "customers": len(population),
        "persons": int(population["person_id"].nunique()),
        "as_of_date": str(population[churn.AS_OF].max())[:10],
    }


def evaluate_holdout(con: duckdb.DuckDBPyConnection) -> dict:
    """AUC and ECE on the held-out last labelled snapshot: champion's kind vs recency alone."""
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from ml import churn, metrics, registry
    from orchestration.churn.assets import ChurnTrainingConfig, read_features

    features = read_features(con)
    if reason := churn.too_little_to_train(features):
        raise click.ClickException(f"no churn model can be evaluated on this warehouse: {reason}")
    registry.configure()
    champion = registry.champion_info(churn.MODEL_NAME)
    kind = _champion_kind(champion)
    options = ChurnTrainingConfig().options()
    options = churn.TrainingOptions(
        kinds=(kind,) if kind else options.kinds,
        refit_on_all_labelled=False,
        random_state=options.random_state,
        max_training_rows=options.max_training_rows,
        threads=options.threads,
    )
    result = churn.train(features, options)
    best = result["best_kind"]
    report = result["metrics"][best]
    recency = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), LogisticRegression()
    ).fit(result["train"][["recency_days"]].astype(float), churn.labels(result["train"]))
    y = churn.labels(result["valid"])
    baseline_p = recency.predict_proba(result["valid"][["recency_days"]].astype(float))[:, 1]
    return {
        "mode": "holdout",
        "kind": best,
        "champion_version": int(champion["version"]) if champion else None,
        "auc": report["roc_auc"],
        "ece": report["ece"],
        "baseline": "recency_days only (logistic regression)",
        "baseline_auc": metrics.roc_auc(y, baseline_p),
        "baseline_ece": metrics.expected_calibration_error(y, baseline_p),
        "pr_auc": report["pr_auc"],
        "brier": report["brier"],
        "lift_top_decile": report["lift_top_decile"],
        "churn_rate": float(np.mean(y)),
        "mean_predicted": report["mean_predicted"],
        "customers": len(result["valid"]),
        "train_rows": len(result["train"]),
        "as_of_date": str(result["valid_as_of"].date()),
        "held_out_days": churn.HORIZON_DAYS,
        "features_dropped": result["dropped_features"],
    }


def _champion_kind(champion: dict | None) -> str | None:
    """The estimator kind the champion was trained as (its run's ``best_kind`` parameter)."""
    if not champion or not champion.get("run_id"):
        return None
    from mlflow.tracking import MlflowClient

    kind = MlflowClient().get_run(champion["run_id"]).data.params.get("best_kind")
    return kind if kind in ("logreg", "hgb") else None


def measure_timing(con: duckdb.DuckDBPyConnection) -> dict:
    """Training seconds of the churn asset's fit and scoring throughput, with the machine load."""
    import os
    import time

    from threadpoolctl import threadpool_limits

    from ml import churn
    from orchestration.churn.assets import ChurnTrainingConfig, read_features

    options = ChurnTrainingConfig().options()
    started = time.perf_counter()
    features = read_features(con)
    read_seconds = time.perf_counter() - started
    result = churn.train(features, options)
    latest = features[features[churn.AS_OF] == features[churn.AS_OF].max()]
    with threadpool_limits(limits=options.threads):
        started = time.perf_counter()
        churn.score_latest(result["final_model"], latest)
        scoring_seconds = time.perf_counter() - started
    return {
        "feature_rows": len(features),
        "labelled_rows": len(result["labelled"]),
        "customers_scored": len(latest),
        "read_seconds": read_seconds,
        "validation_seconds": result["validation_seconds"],
        "refit_seconds": result["refit_seconds"],
        "training_seconds": result["validation_seconds"] + result["refit_seconds"],
        "scoring_seconds": scoring_seconds,
        "scoring_customers_per_second": len(latest) / max(scoring_seconds, 1e-9),
        "best_kind": result["best_kind"],
        "training_threads": options.threads,
        "load_average": list(os.getloadavg()),
        "cpus": os.cpu_count(),
    }


@click.command(
    "churn",
    help="Champion churn AUC and ECE. With the generator's ground truth: at the end of the data "
    f"against _truth/persons.csv (targets: AUC within {AUC_GAP_TARGET} of the Bayes-optimal AUC, "
    f"ECE <= {ECE_TARGET}). On real data (no _truth/, or --holdout): on the held-out last 90 days, "
    f"next to a recency-only baseline (target: ECE <= {ECE_TARGET}).",
)
@click.option(
    "--holdout",
    is_flag=True,
    help="Evaluate on the held-out last labelled snapshot even where ground truth exists.",
)
@click.option(
    "--timing",
    is_flag=True,
    help="Also time the training asset's fit and the scoring throughput (customers/s) on this warehouse.",
)
def eval_churn_command(holdout: bool, timing: bool) -> None:
    from rich.console import Console

    from c360.settings import get_settings
    from cli.evals import write_report

    settings = get_settings()
    if not settings.warehouse.exists():
        raise click.ClickException(f"no warehouse at {settings.warehouse}: run `c360 run` first")
    truth = [settings.truth / "persons.csv", settings.truth / "identity.csv"]
    holdout = holdout or not all(path.exists() for path in truth)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        scores = evaluate_holdout(con) if holdout else evaluate(con, settings.truth)
        if timing:
            scores["timing"] = measure_timing(con)
    finally:
        con.close()
    if holdout:
        scores["meets_target"] = bool(scores["ece"] <= ECE_TARGET and scores["auc"] >= scores["baseline_auc"])
        table = _holdout_table(scores)
    else:
        scores["auc_gap"] = scores["bayes_auc"] - scores["auc"]
        scores["meets_target"] = bool(scores["auc_gap"] <= AUC_GAP_TARGET and scores["ece"] <= ECE_TARGET)
        table = _truth_table(scores)
    Console().print(table)
    if timing:
        t = scores["timing"]
        click.echo(
            f"timing: {t['labelled_rows']:,} labelled rows trained in {t['training_seconds']:.1f} s "
            f"(validation {t['validation_seconds']:.1f} s + refit {t['refit_seconds']:.1f} s, {t['best_kind']}); "
            f"scored {t['customers_scored']:,} customers at {t['scoring_customers_per_second']:,.0f}/s; "
            f"load average {', '.join(f'{x:.1f}' for x in t['load_average'])} on {t['cpus']} CPUs"
        )
    path = write_report("churn", scores)
    click.echo(f"wrote {path}")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _truth_table(scores: dict):
    from rich.table import Table

    table = Table(title=f"Churn at {scores['as_of_date']} vs ground truth")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "auc",
        "bayes_auc",
        "auc_gap",
        "ece",
        "baseline_auc",
        "baseline_ece",
        "pr_auc",
        "brier",
        "lift_top_decile",
        "churn_rate",
        "mean_predicted",
        "customers",
        "meets_target",
    ):
        table.add_row(key, _cell(scores[key]))
    return table


def _holdout_table(scores: dict):
    from rich.table import Table

    version = f" v{scores['champion_version']}" if scores["champion_version"] else ""
    table = Table(
        title=f"Churn on the held-out {scores['held_out_days']} days from {scores['as_of_date']} "
        f"({scores['customers']:,} customers, churn rate {scores['churn_rate']:.3f})"
    )
    table.add_column("metric")
    table.add_column(f"champion{version} ({scores['kind']})", justify="right")
    table.add_column("recency only", justify="right")
    table.add_row("ROC-AUC", _cell(scores["auc"]), _cell(scores["baseline_auc"]))
    table.add_row(f"ECE (target <= {ECE_TARGET})", _cell(scores["ece"]), _cell(scores["baseline_ece"]))
    table.add_row("mean predicted", _cell(scores["mean_predicted"]), "")
    table.add_row("meets target", str(scores["meets_target"]), "")
    return table
