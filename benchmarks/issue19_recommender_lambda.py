"""Issue 19, recommender λ search: the ``ml/recommender`` asset's training path before (``--before``,
models.py and placements.py read with ``git show``) and after (the working tree) on one warehouse,
side by side in one script run, each in its own forked process.

    .venv/bin/python benchmarks/issue19_recommender_lambda.py WAREHOUSE [--before COMMIT] [--out JSON]

Both paths do what the asset does between reading the warehouse and logging to MLflow (the first
build: no champion): read the relations, the temporal evaluation with its λ search, the final fit
on every interaction. Reported per path: CPU seconds (``time.process_time``, all threads), wall
seconds, the load average at start and end, the λ chosen, the validation NDCG of every λ fitted,
the temporal NDCG@10 and popularity's. BLAS threads = ``C360_TRAINING_THREADS`` as in the asset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from issue19_recommender_fit import load_before, measure


def run(warehouse: str, holdout_days: int, before: str | None) -> dict:
    import duckdb
    import pandas as pd
    import pyarrow.compute as pc

    from orchestration.recommendations import assets

    if before:
        models, placements = load_before(before)
    else:
        from ml.recommendations import models, placements
    con = duckdb.connect(warehouse, read_only=True)
    data = assets._load_training_data(con)
    products = data["products"]
    con.close()
    phases = {"read_cpu_s": time.process_time()}
    interactions = data["interactions"]
    last_event = pd.Timestamp(pc.max(interactions["last_event_at"]).as_py())
    cutoff = (last_event - timedelta(days=holdout_days)).normalize()
    evaluation = models.evaluate_temporal(data.pop("events"), cutoff)
    platform = evaluation["platform"]
    phases["evaluate_cpu_s"] = time.process_time() - phases["read_cpu_s"]
    matrix = models.interaction_matrix_from_arrow(
        interactions["customer_id"], interactions["product_id"], interactions["weight"]
    )
    model = placements.fit_model_on_matrix(
        matrix,
        data["transitions"],
        platform["l2"],
        models.DEFAULT_NEIGHBOURS,
        assets.user_segments(matrix, data["segments"]),
        products.loc[products["category"].isin(["grocery", "beauty"]), "product_id"],
        products.loc[products["is_discontinued"], "product_id"],
    )
    phases["final_fit_cpu_s"] = time.process_time() - phases["read_cpu_s"] - phases["evaluate_cpu_s"]
    return {
        **{k: round(v, 1) for k, v in phases.items()},
        "l2": platform["l2"],
        "l2_validation_ndcg": platform["l2_validation_ndcg"],
        "temporal_ndcg@10": platform["ndcg@10"],
        "popularity_ndcg@10": evaluation["popularity"]["ndcg@10"],
        "users_evaluated": evaluation["users"]["evaluated"],
        "weights_nnz": int(model.state["weights"].nnz),
        "_weights": model.state["weights"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "warehouse", help="A warehouse.duckdb with the relations the asset reads (read only)."
    )
    parser.add_argument("--before", default="HEAD")
    parser.add_argument("--holdout-days", type=int, default=60)
    parser.add_argument("--out")
    args = parser.parse_args()
    os.environ["C360_HOME"] = os.environ.get("C360_HOME") or "/tmp/c360_bench_lambda"
    out = {}
    for name, before in (("before", args.before), ("after", None)):
        load = os.getloadavg()
        result = measure(run, args.warehouse, args.holdout_days, before)
        result["load_start"], result["load_end"] = load, os.getloadavg()
        out[name] = {k: v for k, v in result.items() if not k.startswith("_")}
        out[name]["_weights_path"] = result["_weights_path"]
        print(name, json.dumps(out[name], default=str), flush=True)
    from issue19_recommender_fit import agreement

    out["neighbours_kept_by_both"] = agreement(
        out["before"].pop("_weights_path"), out["after"].pop("_weights_path")
    )
    out["uptime_end"] = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
