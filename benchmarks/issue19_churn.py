"""Issue 19, churn: the 5-fold calibrated training (before) against the held-out-slice one (after),
side by side in one process on the same data and machine load.

    .venv/bin/python benchmarks/issue19_churn.py [--demo WAREHOUSE --truth DIR] [--cdnow WAREHOUSE]
        [--synthetic-customers 25000] [--before COMMIT]

"Before" is ``ml/churn.py`` as of ``--before`` (read with ``git show``), "after" the working tree's.
For each table: validation and refit seconds (wall and CPU, ``time.process_time``), validation
AUC/ECE of each kind, and the scoring throughput of the final model on the latest snapshot. With
``--truth`` (a ``c360 generate`` home) the final models' scores of the latest snapshot are also
compared with the generator's truth, as ``c360 eval churn`` does with the champion's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli.evals.churn import POPULATION_SQL
from ml import churn as after
from ml import metrics


def load_before(commit: str):
    source = subprocess.run(
        ["git", "show", f"{commit}:ml/churn.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "churn_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("churn_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["churn_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def read_features(warehouse: str) -> pd.DataFrame:
    con = duckdb.connect(warehouse, read_only=True)
    try:
        df = con.execute("select * from features.churn_features order by as_of_date, customer_id").df()
    finally:
        con.close()
    df["as_of_date"] = pd.to_datetime(df["as_of_date"])
    return df


def truth_population(warehouse: str, truth: Path) -> pd.DataFrame:
    """``c360 eval churn``'s population, without the champion's scores (scored here instead)."""
    sql = POPULATION_SQL.replace("join ml.churn_scores s using (customer_id)\n", "").replace(
        "s.churn_probability, ", ""
    )
    con = duckdb.connect(warehouse, read_only=True)
    try:
        df = con.execute(
            sql, {"identity": str(truth / "identity.csv"), "persons": str(truth / "persons.csv")}
        ).df()
    finally:
        con.close()
    return df


def measure(module, features: pd.DataFrame, population: pd.DataFrame | None) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    result = module.train(features, module.TrainingOptions())
    train_cpu, train_wall = time.process_time() - cpu, time.perf_counter() - wall
    latest = features[features[module.AS_OF] == features[module.AS_OF].max()]
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2):
        cpu, wall = time.process_time(), time.perf_counter()
        module.score_latest(result["final_model"], latest)
        score_cpu, score_wall = time.process_time() - cpu, time.perf_counter() - wall
    out = {
        "train_rows": len(result["train"]),
        "labelled_rows": len(result["labelled"]),
        "best_kind": result["best_kind"],
        "validation_s": round(result["validation_seconds"], 2),
        "refit_s": round(result["refit_seconds"], 2),
        "train_wall_s": round(train_wall, 2),
        "train_cpu_s": round(train_cpu, 2),
        "valid": {
            kind: {"auc": round(r["roc_auc"], 4), "ece": round(r["ece"], 4)}
            for kind, r in result["metrics"].items()
        },
        "scored": len(latest),
        "score_wall_s": round(score_wall, 3),
        "score_cpu_s": round(score_cpu, 3),
        "customers_per_s": round(len(latest) / score_wall),
    }
    if population is not None:
        y = population["true_churned"].to_numpy()
        p = module.predict_churn(result["final_model"], population)
        out["truth"] = {
            "auc": round(metrics.roc_auc(y, p), 4),
            "ece": round(metrics.expected_calibration_error(y, p), 4),
            "bayes_auc": round(metrics.roc_auc(y, population["true_churn_prob"].to_numpy()), 4),
            "customers": len(population),
        }
    return out


def synthetic(n_customers: int) -> pd.DataFrame:
    sys.path.insert(0, str(ROOT / "tests" / "ml"))
    from test_churn import synthetic_feature_table

    return synthetic_feature_table(n_customers, ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="4d42bfb")
    parser.add_argument("--demo")
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--cdnow")
    parser.add_argument("--synthetic-customers", type=int, default=0)
    args = parser.parse_args()
    before = load_before(args.before)
    tables = {}
    if args.demo:
        population = truth_population(args.demo, args.truth) if args.truth else None
        tables["demo"] = (read_features(args.demo), population)
    if args.cdnow:
        tables["cdnow"] = (read_features(args.cdnow), None)
    if args.synthetic_customers:
        tables["synthetic"] = (synthetic(args.synthetic_customers), None)
    report = {}
    for name, (features, population) in tables.items():
        for label, module in (("before", before), ("after", after)):
            report[f"{name}/{label}"] = row = measure(module, features, population)
            row["load_average"] = [round(x, 2) for x in os.getloadavg()]
            print(name, label, json.dumps(row), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
