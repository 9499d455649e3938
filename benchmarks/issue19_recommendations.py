"""Issue 19, item 3: batch scoring of the recommendation placements, before and after, in one
process under the same load (wall and CPU seconds), plus row-for-row agreement.

    .venv/bin/python benchmarks/issue19_recommendations.py --home /tmp/recs19demo/c360
    .venv/bin/python benchmarks/issue19_recommendations.py --synthetic 20000 [--new-only 100000]

``old_score_placements`` below is a verbatim copy of ``score_placements`` (and the top-k it
used) before the change, kept here so the comparison runs against the real previous code.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.recommendations import models
from ml.recommendations.models import ITEM, USER
from ml.recommendations.placements import (
    POPULARITY_TIE_BREAK,
    REASON_NEXT,
    REASON_PERSONAL,
    REASON_POPULAR,
    REASON_SIMILAR,
    REASON_TOGETHER,
    rules_matrix,
    score_placements,
)

# ---------------------------------------------------------------- the previous code, verbatim


def old_top_k_from_scores(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns per row of a dense score block; ``-inf`` entries are never chosen."""
    n_rows, n_cols = scores.shape
    take = min(k, n_cols)
    part = (
        np.argpartition(-scores, take - 1, axis=1)[:, :take]
        if take < n_cols
        else np.tile(np.arange(n_cols), (n_rows, 1))
    )
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    top_scores = np.take_along_axis(part_scores, order, axis=1)
    idx = np.where(np.isneginf(top_scores), -1, idx)
    if take < k:
        idx = np.pad(idx, ((0, 0), (0, k - take)), constant_values=-1)
        top_scores = np.pad(top_scores, ((0, 0), (0, k - take)), constant_values=-np.inf)
    return idx, top_scores.astype(np.float32)


def _normalise_rows(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    return np.where(top > 0, np.maximum(scores, 0) / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


def old_score_placements(
    state: dict,
    customers: pd.DataFrame,
    interactions: pd.DataFrame,
    rules: pd.DataFrame,
    available: set,
    repurchase: set,
    k: int = 10,
    placements: tuple[str, ...] = ("home", "product", "cart"),
) -> Iterator[pd.DataFrame]:
    """Top-k per customer for the home, product and cart placements (or those of
    ``placements``), one frame per batch.

    ``state`` is a fitted ``RecommenderModel.state``; ``customers`` has ``customer_id,
    segment``; ``interactions`` is the current ``int_interactions_weighted`` (history, bought
    products and each customer's last touched product, which anchors product and cart).
    Products outside ``available`` are never shown; bought ones only if in ``repurchase``.
    Everything is matrix algebra over blocks of customers (``models._batches``).
    """
    items = pd.Index(state["meta"]["item_ids"])
    n_items = len(items)
    weights, transitions = state["weights"], state["transitions"]
    together = rules_matrix(rules, items)
    customer_ids = customers["customer_id"].astype(str).to_numpy()
    users = pd.Index(customer_ids)
    known = interactions[interactions[ITEM].astype(str).isin(items)]
    rows = users.get_indexer(known[USER].astype(str))
    cols = items.get_indexer(known[ITEM].astype(str))
    keep = rows >= 0
    rows, cols, known = rows[keep], cols[keep], known[keep]
    shape = (len(users), n_items)
    history = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    history.sum_duplicates()
    history.data[:] = 1.0
    bought = known["purchase_count"].to_numpy() > 0
    repurchasable = items.isin(list(repurchase))
    not_again = bought & ~repurchasable[cols]
    seen = sp.csr_matrix(
        (np.ones(not_again.sum(), np.float32), (rows[not_again], cols[not_again])), shape=shape
    )
    blocked = ~items.isin(list(available))
    last = np.full(len(users), -1)
    order = np.argsort(known["last_event_at"].to_numpy(), kind="stable")
    last[rows[order]] = cols[order]  # the latest write per customer wins

    segments = pd.Index(state["meta"]["segments"])
    globally = state["popularity"].astype(np.float32)
    # One row per segment plus a last row, global popularity, for customers without a segment.
    seg_pop = np.vstack(
        [state["segment_popularity"] + globally / (globally.max() + 1.0), globally[None]]
    ).astype(np.float32)
    seg_rows = segments.get_indexer(customers["segment"].astype(object))
    seg_rows = np.where(seg_rows >= 0, seg_rows, len(segments))
    ranks = np.arange(1, k + 1, dtype=np.int32)

    for block in models._batches(len(users), n_items):
        h = history[block]
        n = h.shape[0]
        popular = _normalise_rows(seg_pop[seg_rows[block]])
        anchor = last[block]
        has_anchor = anchor >= 0
        safe_anchor = np.where(has_anchor, anchor, 0)

        personal = _normalise_rows(np.asarray((h @ weights).toarray(), dtype=np.float32))
        similar = _normalise_rows(np.where(has_anchor[:, None], weights[safe_anchor].toarray(), 0.0))
        following = _normalise_rows(np.where(has_anchor[:, None], transitions[safe_anchor].toarray(), 0.0))
        complements = _normalise_rows(np.where(has_anchor[:, None], together[safe_anchor].toarray(), 0.0))
        cart = 0.5 * following + 0.5 * complements

        exclude = seen[block].toarray() > 0
        exclude[:, blocked] = True
        anchor_mask = np.zeros_like(exclude)
        anchor_mask[np.flatnonzero(has_anchor), anchor[has_anchor]] = True

        frames = []
        for placement, main, extra_mask in (
            ("home", personal, None),
            ("product", similar, anchor_mask),
            ("cart", cart, anchor_mask),
        ):
            if placement not in placements:
                continue
            scores = main + POPULARITY_TIE_BREAK * popular
            scores[exclude] = -np.inf
            if extra_mask is not None:
                scores[extra_mask] = -np.inf
            idx, top = old_top_k_from_scores(scores, k)
            r = np.repeat(np.arange(n), k)
            flat = idx.ravel()
            valid = flat >= 0
            r, flat = r[valid], flat[valid]
            signal = main[r, flat] > 0
            if placement == "home":
                reason = np.where(signal, REASON_PERSONAL, REASON_POPULAR)
            elif placement == "product":
                reason = np.where(signal, REASON_SIMILAR, REASON_POPULAR)
            else:
                reason = np.where(
                    following[r, flat] >= complements[r, flat],
                    np.where(following[r, flat] > 0, REASON_NEXT, REASON_POPULAR),
                    REASON_TOGETHER,
                )
            frames.append(
                pd.DataFrame(
                    {
                        "customer_id": customer_ids[block][r],
                        "placement": placement,
                        "rank": np.tile(ranks, n)[valid],
                        "product_id": items.to_numpy()[flat],
                        "score": top.ravel()[valid].astype(float),
                        "reason": reason,
                    }
                )
            )
        yield pd.concat(frames, ignore_index=True)


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
    args = parser.parse_args()
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
