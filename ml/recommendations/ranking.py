"""Top-k ranking metrics for recommendations, vectorised over users.

Every metric takes ``top_k`` (an ``n_users x k`` integer array of item indices, best
first, ``-1`` for an empty slot) and ``relevant`` (an ``n_users x n_items`` sparse matrix
whose non-zeros are the held-out items of each row's user). Relevance is binary. Users
with no relevant item are left out of the averages: they cannot be scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import scipy.sparse as sp


def hits_matrix(top_k: np.ndarray, relevant: sp.spmatrix) -> np.ndarray:
    """Boolean ``n_users x k`` array: is ``top_k[u, r]`` one of user u's relevant items?"""
    import scipy.sparse as sp

    top_k = np.asarray(top_k)
    relevant = sp.csr_matrix(relevant)
    if top_k.ndim != 2 or top_k.shape[0] != relevant.shape[0]:
        raise ValueError(f"top_k has shape {top_k.shape}; expected ({relevant.shape[0]}, k)")
    relevant.sum_duplicates()
    relevant.sort_indices()
    n_items = relevant.shape[1]
    # One global sorted key per (user, item) pair turns set membership into a searchsorted.
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    relevant_keys = rows * n_items + relevant.indices
    candidate_keys = np.arange(top_k.shape[0], dtype=np.int64)[:, None] * n_items + top_k
    if relevant_keys.size == 0:
        return np.zeros(top_k.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(relevant_keys, candidate_keys), relevant_keys.size - 1)
    return (relevant_keys[pos] == candidate_keys) & (top_k >= 0)


def _relevant_counts(relevant: sp.spmatrix) -> np.ndarray:
    import scipy.sparse as sp

    relevant = sp.csr_matrix(relevant)
    relevant.sum_duplicates()
    return np.diff(relevant.indptr)


def precision_at_k(top_k: np.ndarray, relevant: sp.spmatrix) -> float:
    """Mean share of the k slots that hold a relevant item (empty slots count as misses)."""
    hits = hits_matrix(top_k, relevant)
    scored = _relevant_counts(relevant) > 0
    return float(hits[scored].sum(axis=1).mean() / hits.shape[1]) if scored.any() else float("nan")


def recall_at_k(top_k: np.ndarray, relevant: sp.spmatrix) -> float:
    """Mean share of each user's relevant items found in the top k."""
    hits = hits_matrix(top_k, relevant)
    n_relevant = _relevant_counts(relevant)
    scored = n_relevant > 0
    return float((hits[scored].sum(axis=1) / n_relevant[scored]).mean()) if scored.any() else float("nan")


def ndcg_at_k(top_k: np.ndarray, relevant: sp.spmatrix) -> float:
    """Mean NDCG@k: gain 1/log2(rank + 1), ideal DCG over min(k, |relevant|) hits."""
    hits = hits_matrix(top_k, relevant)
    k = hits.shape[1]
    n_relevant = _relevant_counts(relevant)
    scored = n_relevant > 0
    if not scored.any():
        return float("nan")
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits[scored] @ discount
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n_relevant[scored], k)]
    return float((dcg / ideal).mean())


def map_at_k(top_k: np.ndarray, relevant: sp.spmatrix) -> float:
    """Mean average precision@k, each user's sum of precision-at-hit divided by min(k, |relevant|)."""
    hits = hits_matrix(top_k, relevant)
    k = hits.shape[1]
    n_relevant = _relevant_counts(relevant)
    scored = n_relevant > 0
    if not scored.any():
        return float("nan")
    hits = hits[scored]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    average_precision = (precision_at_rank * hits).sum(axis=1) / np.minimum(n_relevant[scored], k)
    return float(average_precision.mean())


def catalogue_coverage(top_k: np.ndarray, n_items: int) -> float:
    """Share of the n_items catalogue recommended to at least one user."""
    shown = np.unique(np.asarray(top_k).ravel())
    return float((shown >= 0).sum() / n_items)


def ranking_metrics(top_k: np.ndarray, relevant: sp.spmatrix) -> dict[str, float]:
    """All metrics at once, keyed ``ndcg@k``, ``precision@k``, ``recall@k``, ``map@k``, ``coverage``."""
    k = np.asarray(top_k).shape[1]
    return {
        f"ndcg@{k}": ndcg_at_k(top_k, relevant),
        f"precision@{k}": precision_at_k(top_k, relevant),
        f"recall@{k}": recall_at_k(top_k, relevant),
        f"map@{k}": map_at_k(top_k, relevant),
        "coverage": catalogue_coverage(top_k, relevant.shape[1]),
        "users_scored": int((_relevant_counts(relevant) > 0).sum()),
    }


def recall_against(truth: pd.DataFrame, recs: pd.DataFrame, k: int = 10) -> float:
    """Mean recall@k of served recommendations against known (e.g. planted) preferences.

    ``truth`` has ``customer_id, product_id``; ``recs`` has ``customer_id, rank,
    product_id`` as returned by the recommender. Customers in ``truth`` with no
    recommendations score 0; customers only in ``recs`` are ignored.
    """
    truth = truth[["customer_id", "product_id"]].drop_duplicates()
    if truth.empty:
        return float("nan")
    top = recs.loc[recs["rank"] <= k, ["customer_id", "product_id"]].drop_duplicates()
    found = truth.merge(top, on=["customer_id", "product_id"], how="left", indicator=True)
    found["hit"] = found["_merge"] == "both"
    return float(found.groupby("customer_id")["hit"].mean().mean())
