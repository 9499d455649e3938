"""Issue 19, recommender fit: the ``ml/recommender`` asset's training path before (``--before``,
read with ``git show``) and after (the working tree), side by side in one script run on the same
data and machine load.

    .venv/bin/python benchmarks/issue19_recommender_fit.py --demo WAREHOUSE \\
        [--synthetic-users 100000 --synthetic-items 5000 --synthetic-interactions 3000000] [--before COMMIT]

Each path runs in its own forked process (so its peak RSS is its own) and does what the asset does
between reading the warehouse and logging to MLflow: read the relations, the temporal evaluation
with its λ search, the final fit and the lineage record (into a throwaway MLflow store).

* before: interactions and segments through pandas, a float64 Cholesky inverse for each of the
  six λ of the grid plus the refit on the training period and the final fit, lineage from the
  whole DataFrame (digested and schema-inferred by MLflow).
* after, no champion: Arrow reads, the matrix built from Arrow columns, float32 solves sharing one
  Gram matrix per λ search, lineage from an array digest; the full grid.
* after, warm: the same with a champion whose λ is the one the full grid chose (the usual
  scheduled retrain): that λ and its grid neighbours only.

Reported per path: CPU seconds (``time.process_time``, all threads), wall seconds, peak RSS
(``resource.getrusage``), the λ chosen, the λ fitted and the temporal NDCG@10 each chose.
The synthetic set is written to a temporary DuckDB file with the tables the asset reads: customers
in taste groups buying mostly within their group's products (Zipf popularity), a year of touches.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BEFORE_DEFAULT = "fc743af"
BEFORE = BEFORE_DEFAULT


def load_before(commit: str):
    """ml/recommendations/models.py and placements.py as of ``commit``, as modules of their own."""
    tmp = Path(tempfile.mkdtemp())
    loaded = {}
    for name in ("models", "placements"):
        source = subprocess.run(
            ["git", "show", f"{commit}:ml/recommendations/{name}.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        source = source.replace(
            "from ml.recommendations import models", "import recs_models_before as models"
        )
        source = source.replace("from ml.recommendations.models import", "from recs_models_before import")
        path = tmp / f"recs_{name}_before.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"recs_{name}_before", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"recs_{name}_before"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        loaded[name] = module
    return loaded["models"], loaded["placements"]


# ---------------------------------------------------------------- the two paths


def _common(con):
    from orchestration.recommendations import assets

    transitions = con.execute(f"select * from {assets.TRANSITIONS_VIEW}").df()
    products = con.execute(f"select product_id, category, is_discontinued from {assets.PRODUCTS_TABLE}").df()
    allow = products.loc[products["category"].isin(["grocery", "beauty"]), "product_id"]
    unavailable = products.loc[products["is_discontinued"], "product_id"]
    return transitions, allow, unavailable


def run_before(warehouse: str, holdout_days: int) -> dict:
    import duckdb
    import mlflow
    import pandas as pd

    from ml import registry
    from orchestration.recommendations import assets

    models, placements = load_before(BEFORE)
    con = duckdb.connect(warehouse, read_only=True)
    interactions = con.execute(
        f"select customer_id, product_id, weight, purchase_count, last_event_at from {assets.INTERACTIONS_TABLE}"
    ).df()
    events = assets.read_evaluation_touches(con)
    segments = dict(
        con.execute(
            f"select customer_id, rfm_segment from {assets.CUSTOMERS_TABLE} where rfm_segment is not null"
        ).fetchall()
    )
    transitions, allow, unavailable = _common(con)
    con.close()
    last_event = pd.Timestamp(interactions["last_event_at"].max())
    cutoff = (last_event - timedelta(days=holdout_days)).normalize()
    evaluation = models.evaluate_temporal(events, cutoff)
    platform = evaluation["platform"]
    model = placements.fit_model(
        interactions, transitions, platform["l2"], models.DEFAULT_NEIGHBOURS, segments, allow, unavailable
    )
    with mlflow.start_run():
        registry.log_lineage(
            interactions.drop(columns=["last_event_at"]),
            source_table=assets.INTERACTIONS_TABLE,
            as_of=str(last_event),
            name="recommender_interactions",
        )
    return {
        "l2": platform["l2"],
        "l2_fitted": 6,
        "temporal_ndcg@10": platform["ndcg@10"],
        "popularity_ndcg@10": evaluation["popularity"]["ndcg@10"],
        "weights_nnz": int(model.state["weights"].nnz),
        "_weights": model.state["weights"],
    }


def run_after(warehouse: str, holdout_days: int, l2_start: float | None) -> dict:
    import duckdb
    import mlflow
    import pandas as pd
    import pyarrow.compute as pc

    from ml import registry
    from ml.recommendations import models
    from ml.recommendations.placements import fit_model_on_matrix
    from orchestration.recommendations import assets

    con = duckdb.connect(warehouse, read_only=True)
    data = assets._load_training_data(con)
    transitions, allow, unavailable = _common(con)
    con.close()
    interactions = data["interactions"]
    last_event = pd.Timestamp(pc.max(interactions["last_event_at"]).as_py())
    cutoff = (last_event - timedelta(days=holdout_days)).normalize()
    evaluation = models.evaluate_temporal(data.pop("events"), cutoff, l2_start=l2_start)
    platform = evaluation["platform"]
    matrix = models.interaction_matrix_from_arrow(
        interactions["customer_id"], interactions["product_id"], interactions["weight"]
    )
    digest = assets.interactions_digest(matrix, interactions)
    model = fit_model_on_matrix(
        matrix,
        transitions,
        platform["l2"],
        models.DEFAULT_NEIGHBOURS,
        assets.user_segments(matrix, data["segments"]),
        allow,
        unavailable,
    )
    with mlflow.start_run():
        registry.log_lineage(
            digest,
            source_table=assets.INTERACTIONS_TABLE,
            as_of=str(last_event),
            name="recommender_interactions",
        )
    return {
        "l2": platform["l2"],
        "l2_fitted": len(platform["l2_validation_ndcg"]),
        "l2_validation_ndcg": platform["l2_validation_ndcg"],
        "temporal_ndcg@10": platform["ndcg@10"],
        "popularity_ndcg@10": evaluation["popularity"]["ndcg@10"],
        "weights_nnz": int(model.state["weights"].nnz),
        "_weights": model.state["weights"],
    }


def _child(conn, fn, args):
    try:
        _measured(conn, fn, args)
    except BaseException:
        import traceback

        conn.send({"error": traceback.format_exc()})
        raise


def _measured(conn, fn, args):
    from threadpoolctl import threadpool_limits

    from c360.settings import get_settings

    threadpool_limits(get_settings().training_threads)
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args)
    out["cpu_s"] = time.process_time() - cpu
    out["wall_s"] = time.perf_counter() - wall
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    weights = out.pop("_weights")
    path = Path(tempfile.mkdtemp()) / "weights.npz"
    import scipy.sparse as sp

    sp.save_npz(path, weights)
    out["_weights_path"] = str(path)
    conn.send(out)
    conn.close()


def measure(fn, *args) -> dict:
    parent, child = mp.Pipe()
    process = mp.get_context("fork").Process(target=_child, args=(child, fn, args))
    process.start()
    out = parent.recv()
    process.join()
    if "error" in out:
        raise RuntimeError(f"{fn.__name__} failed:\n{out['error']}")
    return out


# ---------------------------------------------------------------- synthetic warehouse


def synthetic_warehouse(path: str, users: int, items: int, touches: int, seed: int = 0) -> None:
    import duckdb
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    groups = 50
    user_group = rng.integers(0, groups, users)
    item_group = rng.integers(0, groups, items)
    # Zipf-ish popularity within and across groups.
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    rng.shuffle(popularity)
    per_user = np.maximum(1, rng.poisson(touches / users, users))
    user = np.repeat(np.arange(users), per_user)
    n = len(user)
    in_group = rng.random(n) < 0.7
    by_group = [np.flatnonzero(item_group == g) for g in range(groups)]
    item = np.empty(n, dtype=np.int64)
    all_p = popularity / popularity.sum()
    item[~in_group] = rng.choice(items, size=(~in_group).sum(), p=all_p)
    for g in range(groups):
        rows = np.flatnonzero(in_group & (user_group[user] == g))
        p = popularity[by_group[g]] / popularity[by_group[g]].sum()
        item[rows] = by_group[g][rng.choice(len(by_group[g]), size=len(rows), p=p)]
    day = rng.integers(0, 365, n)
    event_type = rng.choice(np.array(["view", "cart", "purchase"]), size=n, p=[0.6, 0.15, 0.25])
    touches_df = pd.DataFrame(
        {
            "customer_id": pd.Series(user).map(lambda u: f"C{u:07d}").astype(str),
            "product_id": pd.Series(item).map(lambda i: f"P{i:05d}").astype(str),
            "event_time": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(day, unit="D")
            + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
            "event_type": event_type,
        }
    )
    con = duckdb.connect(path)
    for schema in ("intermediate", "features", "marts", "staging"):
        con.execute(f"create schema if not exists {schema}")
    con.register("t", touches_df)
    con.execute(
        "create table features.recommender_touches as select * from t order by customer_id, event_time"
    )
    con.unregister("t")
    con.execute(
        """
        create table intermediate.int_interactions_weighted as
        select customer_id, product_id,
               sum(case event_type when 'purchase' then 5 when 'cart' then 3 else 1 end)::double as weight,
               count(*) filter (where event_type = 'purchase') as purchase_count,
               max(event_time) as last_event_at
        from features.recommender_touches group by all
        """
    )
    con.execute(
        """
        create table features.recommender_evaluation_customers as
        select customer_id, row_number() over (order by md5(customer_id)) as sample_rank
        from (select distinct customer_id from features.recommender_touches)
        """
    )
    con.execute(
        """
        create table features.recommender_transitions as
        with ordered as (
            select product_id as to_product,
                   lag(product_id) over (partition by customer_id order by event_time, product_id) as from_product
            from features.recommender_touches
        )
        select from_product, to_product, count(*) as transitions from ordered
        where from_product is not null and from_product <> to_product group by all
        """
    )
    segments = np.array(["champions", "loyal", "at_risk", "hibernating", "new"])
    con.register(
        "c",
        pd.DataFrame(
            {
                "customer_id": [f"C{u:07d}" for u in range(users)],
                "rfm_segment": segments[rng.integers(0, 5, users)],
            }
        ),
    )
    con.execute("create table marts.customer_360 as select * from c")
    categories = np.array(["grocery", "beauty", "fashion", "home", "outdoor"])
    con.register(
        "p",
        pd.DataFrame(
            {
                "product_id": [f"P{i:05d}" for i in range(items)],
                "category": categories[rng.integers(0, 5, items)],
                "is_discontinued": rng.random(items) < 0.02,
            }
        ),
    )
    con.execute("create table staging.stg_catalog__products as select * from p")
    con.execute(
        "create table features.category_repurchase_rates as select 'grocery' as category, 0.3 as repurchase_rate"
    )
    con.close()


# ---------------------------------------------------------------- main


def agreement(a: str, b: str) -> float:
    """Share of the before model's kept neighbours (per item, the 200 largest weights) the after model also keeps."""
    import scipy.sparse as sp

    x, y = sp.load_npz(a).tocsr(), sp.load_npz(b).tocsr()
    both = x.multiply(y != 0)
    return both.nnz / max(x.nnz, 1)


def compare(label: str, warehouse: str, holdout_days: int) -> dict:
    os.environ["C360_HOME"] = tempfile.mkdtemp(prefix="c360_bench_")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp(prefix='mlruns_')}/mlflow.db"
    load = os.getloadavg()
    before = measure(run_before, warehouse, holdout_days)
    print(label, "before", json.dumps({k: v for k, v in before.items() if not k.startswith("_")}), flush=True)
    after = measure(run_after, warehouse, holdout_days, None)
    print(label, "after", json.dumps({k: v for k, v in after.items() if not k.startswith("_")}), flush=True)
    warm = measure(run_after, warehouse, holdout_days, after["l2"])
    print(
        label, "after_warm", json.dumps({k: v for k, v in warm.items() if not k.startswith("_")}), flush=True
    )
    out = {"load_before": load, "load_after": os.getloadavg()}
    out["neighbours_kept_by_both"] = agreement(before["_weights_path"], after["_weights_path"])
    for name, result in (("before", before), ("after", after), ("after_warm", warm)):
        out[name] = {k: v for k, v in result.items() if not k.startswith("_")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", help="A demo home's warehouse.duckdb (read only).")
    parser.add_argument("--synthetic-users", type=int, default=100_000)
    parser.add_argument("--synthetic-items", type=int, default=5_000)
    parser.add_argument("--synthetic-interactions", type=int, default=3_000_000)
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--holdout-days", type=int, default=60)
    parser.add_argument("--before", default=BEFORE_DEFAULT)
    parser.add_argument("--out", help="Write the figures as JSON here.")
    args = parser.parse_args()
    global BEFORE
    BEFORE = args.before
    results = {
        "uptime": subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    }
    if args.demo:
        results["demo"] = compare("demo", args.demo, args.holdout_days)
    if not args.no_synthetic:
        path = str(Path(tempfile.mkdtemp()) / "synthetic.duckdb")
        started = time.perf_counter()
        proc = mp.get_context("fork").Process(
            target=synthetic_warehouse,
            args=(path, args.synthetic_users, args.synthetic_items, args.synthetic_interactions),
        )
        proc.start()
        proc.join()
        print(f"synthetic warehouse written in {time.perf_counter() - started:.0f} s", flush=True)
        results["synthetic"] = {
            "users": args.synthetic_users,
            "items": args.synthetic_items,
            "touches": args.synthetic_interactions,
            **compare("synthetic", path, args.holdout_days),
        }
    results["uptime_end"] = subprocess.run(
        ["uptime"], check=False, capture_output=True, text=True
    ).stdout.strip()
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
