"""Recommendation pieces the Dagster assets compose, pure functions of DataFrames: which
categories are bought again, how many planted bundles the cross-sell rules recover, fitting the
recommender (CF, popularity per segment, next-item transitions), and scoring the home, product
and cart placements in batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.recommendations import models
from ml.recommendations.models import ITEM, USER, WEIGHT, top_k_from_scores

DEFAULT_REPURCHASE_CATEGORIES = ("baby", "beauty", "grocery", "health", "pets")
REASON_PERSONAL, REASON_SIMILAR, REASON_NEXT, REASON_TOGETHER, REASON_POPULAR = (
    "personal",
    "similar_to_last_product",
    "next_item",
    "bought_together",
    "popular_in_segment",
)
# Weak popularity term: breaks ties and fills slots the main signal has nothing for.
POPULARITY_TIE_BREAK = 1e-3


def learn_repurchase_categories(rates: pd.DataFrame, min_rate: float) -> list[str]:
    """Categories whose repurchase rate (REPURCHASE_SQL) reaches ``min_rate``."""
    return sorted(rates.loc[rates["repurchase_rate"] >= min_rate, "category"].astype(str))


def bundle_recovery(rules: pd.DataFrame, bundles: pd.DataFrame, top_n: int | None = None) -> dict:
    """Share of planted bundle pairs (``bundle_id, product_id``) found, in either direction,
    among the ``top_n`` rules by lift (default: two rules per planted pair)."""
    pairs = set()
    for _, group in bundles.groupby("bundle_id"):
        items = sorted(group["product_id"].astype(str))
        pairs |= {(a, b) for i, a in enumerate(items) for b in items[i + 1 :]}
    if not pairs:
        return {"bundle_pairs": 0, "top_n": 0, "found": 0, "share": float("nan")}
    top_n = top_n or 2 * len(pairs)
    top = rules.sort_values(["lift", "support"], ascending=False).head(top_n)
    found = {tuple(sorted((str(a), str(c)))) for a, c in zip(top["antecedent"], top["consequent"])} & pairs
    anywhere = {
        tuple(sorted((str(a), str(c)))) for a, c in zip(rules["antecedent"], rules["consequent"])
    } & pairs
    return {
        "bundle_pairs": len(pairs),
        "top_n": int(top_n),
        "found": len(found),
        "share": len(found) / len(pairs),
        "share_in_all_rules": len(anywhere) / len(pairs),
    }


# ---------------------------------------------------------------- fitting


def fit_model(
    interactions: pd.DataFrame,
    transitions: pd.DataFrame,
    l2: float,
    neighbours: int,
    segments: dict,
    allow_repurchase,
    unavailable,
) -> models.RecommenderModel:
    """CF and popularity on the weighted interactions; the next-item model from the transition
    counts (``from_product, to_product, transitions``) of the time-ordered touches."""
    matrix = models.build_interaction_matrix(interactions[[USER, ITEM, WEIGHT]])
    cf = models.ItemItemRecommender(l2=l2, neighbours=neighbours).fit(matrix.matrix)
    popularity = models.PopularityRecommender().fit(matrix.matrix, [segments.get(u) for u in matrix.user_ids])
    next_items = models.TransitionModel.from_counts(transitions, matrix)
    # Logged, not served here: no in-memory histories (the served model reads the warehouse).
    return models.RecommenderModel.from_fitted(
        matrix, cf, popularity, next_items, allow_repurchase, unavailable, keep_history=False
    )


def popularity_state(products: pd.DataFrame, interactions: pd.DataFrame) -> dict:
    """A model-free ``score_placements`` state for when there is no champion: the catalogue
    (``product_id``; catalogue order = product id order) ranked by distinct buyers in ``interactions``
    (``customer_id, product_id, purchase_count``), ties and never-bought products in catalogue
    order; no item-item weights, transitions or segments."""
    items = pd.Index(np.sort(pd.unique(products["product_id"].astype(str))))
    bought = interactions[interactions["purchase_count"] > 0]
    buyers = bought.groupby(bought[ITEM].astype(str))[USER].nunique()
    counts = buyers.reindex(items, fill_value=0).to_numpy(dtype=np.float32)
    # In (0, 0.5]: orders ties by catalogue position without ever outweighing one buyer.
    order = 0.5 * (1.0 - np.arange(len(items), dtype=np.float32) / max(len(items), 1))
    n = len(items)
    return {
        "weights": sp.csr_matrix((n, n), dtype=np.float32),
        "transitions": sp.csr_matrix((n, n), dtype=np.float32),
        "popularity": counts + order,
        "segment_popularity": np.zeros((0, n), dtype=np.float32),
        "meta": {"item_ids": list(items), "segments": []},
    }


# ---------------------------------------------------------------- batch scoring


def _normalise_rows(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    return np.where(top > 0, np.maximum(scores, 0) / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


def rules_matrix(rules: pd.DataFrame, item_ids: pd.Index) -> sp.csr_matrix:
    """Item x item confidence of the cross-sell rules, on the model's item index."""
    a = item_ids.get_indexer(rules["antecedent"].astype(str))
    c = item_ids.get_indexer(rules["consequent"].astype(str))
    keep = (a >= 0) & (c >= 0)
    return sp.csr_matrix(
        (rules["confidence"].to_numpy(dtype=np.float32)[keep], (a[keep], c[keep])),
        shape=(len(item_ids), len(item_ids)),
    )


def score_placements(
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
            idx, top = top_k_from_scores(scores, k)
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
