"""Issue 19, item 3: batch scoring of the recommendation placements, before and after, in one
process under the same load (wall and CPU seconds), plus row-for-row agreement.

    .venv/bin/python benchmarks/issue19_recommendations.py --home /tmp/recs19demo/c360
    .venv/bin/python benchmarks/issue19_recommendations.py --synthetic 20000 [--new-only 100000]
        [--before COMMIT]

"Before" is ``score_placements`` (and the top-k it used) as of ``--before`` (read with
``git show``: the commit before the change), "after" the working tree's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.recommendations.placements import score_placements

# The main branch just before the placements change (ml/recommendations as at merge 30ccdfc's first parent).
BEFORE = "87b0809"

# ---------------------------------------------------------------- the previous code, from git


def _module_at(commit: str, path: str, name: str):
    """``path`` as of ``commit`` (``git show``), loaded as the module ``name``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def old_scorer(commit: str):
    """``score_placements`` as of ``commit``, with the top-k and batching of its own models.py."""
    old_models = _module_at(commit, "ml/recommendations/models.py", "models_before")
    old_placements = _module_at(commit, "ml/recommendations/placements.py", "placements_before")
    old_placements.models = old_models
    old_placements.top_k_from_scores = old_models.top_k_from_scores
    return old_placements.score_placements


# ---------------------------------------------------------------- inputs


def demo_inputs(home: str) -> tuple:
    os.environ["C360_HOME"] = home
    import duckdb

    from orchestration.recommendations.assets import load_champion

    _, model, params = load_champion()
    con = duckdb.connect(f"{home}/warehouse.duckdb", read_only=True)
    customers = con.execute(
        "select customer_id, rfm_segment as segment from marts.customer_360 order by customer_id"
    ).df()
    interactions = con.execute(
        "select customer_id, product_id, purchase_count, last_event_at from intermediate.int_interactions_weighted"
    ).df()
    products = con.execute(
        "select product_id, category, is_discontinued from staging.stg_catalog__products"
    ).df()
    rules = con.execute("select antecedent, consequent, confidence from ml.cross_sell_rules").df()
    con.close()
    available = set(products.loc[~products["is_discontinued"], "product_id"].astype(str))
    categories = [c for c in params.get("repurchase_categories", "").split(",") if c]
    repurchase = set(products.loc[products["category"].isin(categories), "product_id"].astype(str))
    return model.state, customers, interactions, rules, available, repurchase


def synthetic_inputs(n_customers: int, n_items: int = 10_000, per_customer: int = 33, seed: int = 0) -> tuple:
    """The L-scale shape per customer: 10k items, 200 EASE-like weights per item (some
    negative), ~33 touched products per customer (Zipf-popular), 10 segments."""
    rng = np.random.default_rng(seed)
    items = np.array([f"P{i:06d}" for i in range(n_items)])
    neighbours = 200
    rows = np.repeat(np.arange(n_items), neighbours)
    cols = rng.integers(0, n_items, rows.size)
    weights = sp.csr_matrix(
        (rng.normal(0.01, 0.02, rows.size).astype(np.float32), (rows, cols)), shape=(n_items, n_items)
    )
    weights.setdiag(0)
    weights.eliminate_zeros()
    t_rows = np.repeat(np.arange(n_items), 30)
    transitions = sp.csr_matrix(
        (
            rng.integers(1, 20, t_rows.size).astype(np.float32),
            (t_rows, rng.integers(0, n_items, t_rows.size)),
        ),
        shape=(n_items, n_items),
    )
    segments = [f"seg{i}" for i in range(10)]
    popularity = rng.zipf(1.5, n_items).clip(max=10**6).astype(np.float32)
    state = {
        "weights": weights,
        "transitions": transitions,
        "popularity": popularity,
        "segment_popularity": (popularity[None] * rng.uniform(0, 1, (10, n_items)))
        .round()
        .astype(np.float32),
        "meta": {"item_ids": list(items), "segments": segments},
    }
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i:08d}" for i in range(n_customers)],
            "segment": rng.choice(segments, n_customers),
        }
    )
    counts = rng.poisson(per_customer, n_customers).clip(1)
    who = np.repeat(np.arange(n_customers), counts)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    what = rng.choice(n_items, who.size, p=p / p.sum())
    interactions = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].to_numpy()[who],
            "product_id": items[what],
            "purchase_count": rng.integers(0, 2, who.size),
            "last_event_at": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(rng.integers(0, 10**7, who.size), "s"),
        }
    ).drop_duplicates(["customer_id", "product_id"])
    rules = pd.DataFrame(
        {
            "antecedent": items[rng.integers(0, n_items, 20_000)],
            "consequent": items[rng.integers(0, n_items, 20_000)],
            "confidence": rng.uniform(0.05, 1, 20_000).astype(np.float32),
        }
    ).drop_duplicates(["antecedent", "consequent"])
    available = set(items[rng.uniform(size=n_items) > 0.05])
    repurchase = set(items[: n_items // 5])
    return state, customers, interactions, rules, available, repurchase


# ---------------------------------------------------------------- timing and agreement


def timed(function, inputs) -> tuple[pd.DataFrame, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = pd.concat(function(*inputs, k=10), ignore_index=True)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def agreement(old: pd.DataFrame, new: pd.DataFrame) -> dict:
    """Same (customer, placement, rank) slots, same scores; products differ only where the old
    top-k chose arbitrarily among equal scores."""
    key = ["customer_id", "placement", "rank"]
    merged = old.merge(new, on=key, how="outer", suffixes=("_old", "_new"), indicator=True)
    both = merged[merged["_merge"] == "both"]
    differ = both[both["product_id_old"] != both["product_id_new"]]
    # A differing product is a tie when the old list holds the new product at the same score.
    old_scores = old.set_index(["customer_id", "placement", "product_id"])["score"]
    lookup = pd.MultiIndex.from_arrays([differ["customer_id"], differ["placement"], differ["product_id_new"]])
    new_in_old = old_scores.reindex(lookup).to_numpy()
    tie = (differ["score_old"].to_numpy() == differ["score_new"].to_numpy()) & (
        np.isnan(new_in_old) | (new_in_old == differ["score_new"].to_numpy())
    )
    return {
        "rows_old": len(old),
        "rows_new": len(new),
        "slots_only_in_one": int((merged["_merge"] != "both").sum()),
        "identical_rows": int(
            (
                (both["product_id_old"] == both["product_id_new"])
                & (both["score_old"] == both["score_new"])
                & (both["reason_old"] == both["reason_new"])
            ).sum()
        ),
        "score_differs": int((both["score_old"] != both["score_new"]).sum()),
        "product_differs": len(differ),
        "product_differs_at_equal_score": int(tie.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home")
    parser.add_argument("--synthetic", type=int)
    parser.add_argument(
        "--new-only", type=int, help="also time the new code alone on this many synthetic customers"
    )
    parser.add_argument("--before", default=BEFORE, help="commit of the code to compare with")
    args = parser.parse_args()
    old_score_placements = old_scorer(args.before)
    inputs = demo_inputs(args.home) if args.home else synthetic_inputs(args.synthetic)
    state, customers, interactions = inputs[0], inputs[1], inputs[2]
    print(
        f"inputs: {len(customers):,} customers, {len(state['meta']['item_ids']):,} items, "
        f"{len(interactions):,} interactions, {state['weights'].nnz:,} weights; load {os.getloadavg()}"
    )
    old, old_wall, old_cpu = timed(old_score_placements, inputs)
    print(f"old: {old_wall:.1f} s wall, {old_cpu:.1f} s CPU; load {os.getloadavg()}")
    new, new_wall, new_cpu = timed(score_placements, inputs)
    print(f"new: {new_wall:.1f} s wall, {new_cpu:.1f} s CPU; load {os.getloadavg()}")
    print(
        f"per customer: old {1e3 * old_cpu / len(customers):.3f} ms CPU, new {1e3 * new_cpu / len(customers):.3f} ms CPU"
    )
    print("agreement:", agreement(old, new))
    if args.new_only:
        inputs = synthetic_inputs(args.new_only)
        _, wall, cpu = timed(score_placements, inputs)
        print(
            f"new alone, {args.new_only:,} synthetic customers: {wall:.1f} s wall, {cpu:.1f} s CPU; load {os.getloadavg()}"
        )


if __name__ == "__main__":
    main()
