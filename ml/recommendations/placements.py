"""Recommendation pieces the Dagster assets compose, pure functions of DataFrames: which
categories are bought again, how many planted bundles the cross-sell rules recover, fitting the
recommender (CF, popularity per segment, next-item transitions), and scoring the home, product
and cart placements in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ml.recommendations import models
from ml.recommendations.models import ITEM, USER, WEIGHT, top_k_from_scores

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import scipy.sparse as sp

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
    user_segments = [segments.get(u) for u in matrix.user_ids]
    return fit_model_on_matrix(
        matrix, transitions, l2, neighbours, user_segments, allow_repurchase, unavailable
    )


def fit_model_on_matrix(
    matrix: models.InteractionMatrix,
    transitions: pd.DataFrame,
    l2: float,
    neighbours: int,
    user_segments,
    allow_repurchase,
    unavailable,
) -> models.RecommenderModel:
    """``fit_model`` on an interaction matrix already built (``interaction_matrix_from_arrow``);
    ``user_segments`` holds each matrix row's segment (None: none)."""
    cf = models.ItemItemRecommender(l2=l2, neighbours=neighbours).fit(matrix.matrix)
    popularity = models.PopularityRecommender().fit(matrix.matrix, user_segments)
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
    import pandas as pd
    import scipy.sparse as sp

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

# A product or cart list is shared by every customer with the same anchor and segment; it holds
# k plus this many items so that a customer who already bought some of them still has k left.
# One who has fewer left is scored alone (the same scores; just slower).
ANCHOR_LIST_SPARE = 40
# Candidate entries (a pair's row of the placement's matrix plus its popularity fill) listed at
# once by _anchor_lists: ~50 bytes each across its arrays, so ~0.5 GB per chunk.
ANCHOR_CHUNK_ENTRIES = 10_000_000


def _normalise_rows(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    return np.where(top > 0, np.maximum(scores, 0) / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


def _normalise_sparse_rows(matrix: sp.spmatrix, product: bool = False) -> sp.csr_matrix:
    """``_normalise_rows`` of a sparse matrix, keeping only its positive entries: the same
    float32 values as the dense form wherever that is positive (it is 0 everywhere else).
    ``product``: ``matrix`` is a fresh sparse product (no duplicates; unsorted columns are fine
    here, and sorting them costs more than the rest)."""
    import scipy.sparse as sp

    out = sp.csr_matrix(matrix, dtype=np.float32, copy=not product)
    if not product:
        out.sum_duplicates()
    counts = np.diff(out.indptr)
    top = np.zeros(out.shape[0], dtype=np.float32)
    filled = counts > 0
    if out.nnz:
        top[filled] = np.maximum.reduceat(out.data, out.indptr[:-1][filled])
    # Implicit zeros never change the sign of the row maximum, so a row whose entries are all
    # negative normalises to zero as in the dense form.
    per_entry = np.repeat(top, counts)
    positive = per_entry > 0
    out.data = np.where(positive, np.maximum(out.data, 0) / np.where(positive, per_entry, 1.0), 0.0).astype(
        np.float32
    )
    out.eliminate_zeros()
    return out


def rules_matrix(rules: pd.DataFrame, item_ids: pd.Index) -> sp.csr_matrix:
    """Item x item confidence of the cross-sell rules, on the model's item index."""
    import scipy.sparse as sp

    a = item_ids.get_indexer(rules["antecedent"].astype(str))
    c = item_ids.get_indexer(rules["consequent"].astype(str))
    keep = (a >= 0) & (c >= 0)
    return sp.csr_matrix(
        (rules["confidence"].to_numpy(dtype=np.float32)[keep], (a[keep], c[keep])),
        shape=(len(item_ids), len(item_ids)),
    )


def _gather_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, position in ``matrix.data``) of every stored entry of ``matrix[rows]``; a row
    index below 0 has no entries."""
    valid = rows >= 0
    safe = np.where(valid, rows, 0)
    counts = np.where(valid, matrix.indptr[safe + 1] - matrix.indptr[safe], 0)
    owner = np.repeat(np.arange(len(rows)), counts)
    first = np.cumsum(counts) - counts
    position = matrix.indptr[safe][owner] + np.arange(counts.sum()) - first[owner]
    return owner, position


def _signal_bar(main: sp.csr_matrix, anchors: np.ndarray, blocked: np.ndarray, length: int) -> np.ndarray:
    """Per anchor, the ``length``-th largest signal among available items other than itself
    (-inf when it has fewer, or no anchor)."""
    rows = np.unique(anchors[anchors >= 0])
    owner, position = _gather_rows(main, rows)
    item, value = main.indices[position], main.data[position]
    ok = (item != rows[owner]) & ~blocked[item]
    owner, value = owner[ok], value[ok]
    counts = np.bincount(owner, minlength=len(rows))
    by_row = np.lexsort((-value, owner))
    full = np.flatnonzero(counts >= length)
    per_row = np.full(len(rows), -np.inf)
    per_row[full] = value[by_row[(np.cumsum(counts) - counts)[full] + length - 1]]
    bar = np.full(len(anchors), -np.inf)
    bar[anchors >= 0] = per_row[np.searchsorted(rows, anchors[anchors >= 0])]
    return bar


def _anchor_lists(
    main: sp.csr_matrix, anchors: np.ndarray, segs: np.ndarray, tie: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ranked items ``(n_pairs, length)`` (-1 past the end) and their scores for each (anchor,
    segment) pair: score = ``main[anchor]`` + ``tie[segment]``, best first, ties by item index;
    the anchor and items whose tie-break is -inf (unavailable) left out. Anchor -1: popularity
    alone. Exactly what a dense row of scores would give, computed from the sparse rows.

    The pairs are listed in chunks of at most ``ANCHOR_CHUNK_ENTRIES`` candidates: each pair's
    list depends on its own row alone, and at 1M customers the cart rows (next items plus rules,
    thousands of entries each) of ~100k pairs made 5-7 GB of candidate arrays at once."""
    valid = anchors >= 0
    nnz = np.diff(main.indptr)[np.where(valid, anchors, 0)] * valid
    # A pair's candidates, plus the popularity fill it may need (at most length + nnz + 1).
    weight = 2 * nnz.astype(np.int64) + length + 1
    ends = np.cumsum(weight)
    starts, at = [], 0
    while at < len(anchors):
        starts.append(at)
        limit = (ends[at - 1] if at else 0) + ANCHOR_CHUNK_ENTRIES
        at = max(at + 1, int(np.searchsorted(ends, limit, side="right")))
    if len(starts) <= 1:
        return _anchor_lists_chunk(main, anchors, segs, tie, length)
    parts = [
        _anchor_lists_chunk(main, anchors[a:b], segs[a:b], tie, length)
        for a, b in zip(starts, [*starts[1:], len(anchors)])
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _anchor_lists_chunk(
    main: sp.csr_matrix, anchors: np.ndarray, segs: np.ndarray, tie: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """``_anchor_lists`` for one chunk of pairs."""
    n_pairs, n_items = len(anchors), main.shape[1]
    owner, position = _gather_rows(main, anchors)
    cand_item = main.indices[position]
    cand_score = main.data[position] + tie[segs[owner], cand_item]
    keep = (cand_item != anchors[owner]) & np.isfinite(cand_score)
    owner, cand_item, cand_score = owner[keep], cand_item[keep], cand_score[keep]
    # A candidate whose signal plus the largest tie-break stays below the length-th largest
    # eligible signal of its anchor can never make the list (nor can any popularity fill then):
    # drop them before sorting. Per anchor, so the sort is over rows of ``main`` once. The 1e-6
    # margin covers float32 rounding of the sums.
    most_tie = float(tie[np.isfinite(tie)].max(initial=0.0))
    bar = _signal_bar(main, anchors, np.isinf(tie[0]), length)
    keep = main.data[position][keep].astype(np.float64) + most_tie + 1e-6 >= bar[owner]
    owner, cand_item, cand_score = owner[keep], cand_item[keep], cand_score[keep]
    # Popularity order per segment (available items only): every item a pair's candidates do
    # not cover scores its tie-break alone, so the first ones in this order fill the list.
    order = np.lexsort((np.broadcast_to(np.arange(n_items), tie.shape), -tie), axis=1)
    n_available = int(np.isfinite(tie[0]).sum())
    order = order[:, :n_available]
    counts = np.bincount(owner, minlength=n_pairs)
    fill = np.where(bar > most_tie + 1e-6, 0, np.minimum(n_available, length + counts + 1))
    fill_owner = np.repeat(np.arange(n_pairs), fill)
    step = np.arange(fill.sum()) - (np.cumsum(fill) - fill)[fill_owner]
    fill_item = order[segs[fill_owner], step]
    fill_score = tie[segs[fill_owner], fill_item]
    duplicate = np.isin(fill_owner * n_items + fill_item, owner * n_items + cand_item, assume_unique=True)
    keep = ~duplicate & (fill_item != anchors[fill_owner])
    owner = np.concatenate([owner, fill_owner[keep]])
    item = np.concatenate([cand_item, fill_item[keep]])
    score = np.concatenate([cand_score, fill_score[keep]])
    ranked = np.lexsort((item, -score, owner))
    owner, item, score = owner[ranked], item[ranked], score[ranked]
    rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
    top = rank < length
    items = np.full((n_pairs, length), -1, dtype=np.int64)
    scores = np.full((n_pairs, length), -np.inf, dtype=np.float32)
    items[owner[top], rank[top]] = item[top]
    scores[owner[top], rank[top]] = score[top]
    return items, scores


def _dense_top_k(
    main: sp.csr_matrix, tie_rows: np.ndarray, seen: sp.csr_matrix, anchor: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, item and score of each customer's top-k over the whole catalogue: ``main`` (sparse,
    non-negative) + ``tie_rows``, minus ``seen`` and each row's ``anchor`` (-1: none)."""
    scores = main.toarray()
    scores += tie_rows
    r, c = seen.nonzero()
    scores[r, c] = -np.inf
    if anchor is not None:
        has = np.flatnonzero(anchor >= 0)
        scores[has, anchor[has]] = -np.inf
    idx, top = top_k_from_scores(scores, k)
    rows = np.repeat(np.arange(len(scores)), idx.shape[1])
    flat, top = idx.ravel(), top.ravel()
    valid = flat >= 0
    return rows[valid], flat[valid], top[valid]


def _listed_top_k(
    lists: tuple[np.ndarray, np.ndarray], pair: np.ndarray, seen: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row, item and score of each customer's top-k from their (anchor, segment) list minus
    what they have ``seen``, the rows the list ran short for (left out: score them alone), and
    each chosen item's position in its list."""
    items, scores = lists[0][pair], lists[1][pair]
    n, n_items = len(items), seen.shape[1]
    seen_keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(seen.indptr)) * n_items + seen.indices
    keys = np.arange(n, dtype=np.int64)[:, None] * n_items + items
    excluded = np.zeros(keys.shape, dtype=bool)
    if len(seen_keys):  # CSR keys are sorted: row-major, columns sorted within a row
        at = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
        excluded = seen_keys[at] == keys
    keep = (items >= 0) & ~excluded
    rank = np.cumsum(keep, axis=1)
    chosen = keep & (rank <= k)
    # A full list (no -1 at its end) may hide further items; a shorter one holds them all.
    short = np.flatnonzero((rank[:, -1] < k) & (items[:, -1] >= 0))
    chosen[short] = False
    rows, cols = np.nonzero(chosen)
    return rows, items[rows, cols], scores[rows, cols], short, cols


def positions(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Where each of ``values`` (as strings) is in ``index``, -1 where absent. A categorical
    column is matched once per category rather than once per row."""
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        at = index.get_indexer(values.cat.categories.astype(str).to_numpy(dtype=object))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, at[np.maximum(codes, 0)], -1)
    return index.get_indexer(values.astype(str).to_numpy(dtype=object))


def _last_touched(rows: np.ndarray, cols: np.ndarray, when: np.ndarray, n_users: int) -> np.ndarray:
    """Per customer row, the item column of their latest touch (-1: none); ties by row order."""
    last = np.full(n_users, -1)
    if when.dtype.kind == "M" and not np.isnat(when).any():
        # Without a sort (33M touches at 1M customers): each customer's latest time, then their
        # rows at that time in row order, of which the last write wins.
        ticks = when.view(np.int64)
        latest = np.full(n_users, np.iinfo(np.int64).min)
        np.maximum.at(latest, rows, ticks)
        at = np.flatnonzero(ticks == latest[rows])
        last[rows[at]] = cols[at]
        return last
    order = np.argsort(when, kind="stable")  # NaT sorts last, as the latest
    last[rows[order]] = cols[order]  # the latest write per customer wins
    return last


def anchors(item_ids, customer_ids, interactions: pd.DataFrame) -> pd.Series:
    """Each customer's anchor for the product and cart placements, as ``score_placements`` picks
    it: the product of their latest ``last_event_at`` among ``item_ids`` (the model's items),
    ties by row order; None without one. Indexed by customer id (str). The cart placement reads
    the cross-sell rules only through this product's rule list, so a rule change reaches only
    the customers anchored on a product whose list changed."""
    import pandas as pd

    items = pd.Index(np.asarray(item_ids, dtype=object), dtype=object)
    users = pd.Index(pd.Series(customer_ids).astype(str).to_numpy(dtype=object), dtype=object)
    rows, cols = positions(interactions[USER], users), positions(interactions[ITEM], items)
    keep = (rows >= 0) & (cols >= 0)
    last = _last_touched(rows[keep], cols[keep], interactions["last_event_at"].to_numpy()[keep], len(users))
    ids = np.asarray(items, dtype=object)
    return pd.Series(np.where(last >= 0, ids[np.maximum(last, 0)], None), index=users, name="anchor")


def _lookup(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows, cols]`` as a flat float array, 0 where ``rows`` is -1."""
    if not len(rows):
        return np.zeros(0, dtype=np.float32)
    values = np.asarray(matrix[np.where(rows >= 0, rows, 0), cols]).ravel()
    return np.where(rows >= 0, values, 0.0)


PLACEMENTS = ("home", "product", "cart")
REASONS = (REASON_PERSONAL, REASON_SIMILAR, REASON_NEXT, REASON_TOGETHER, REASON_POPULAR)
_PERSONAL, _SIMILAR, _NEXT, _TOGETHER, _POPULAR = range(len(REASONS))


@dataclass
class PlacementBlock:
    """One batch of ``score_placement_blocks``: parallel arrays with one entry per recommended
    product, by placement, then customer, then rank."""

    customer: np.ndarray  # row of the ``customers`` frame scored
    placement: np.ndarray  # index into PLACEMENTS
    rank: np.ndarray  # 1 = best
    item: np.ndarray  # column of the model's item ids
    score: np.ndarray
    reason: np.ndarray  # index into REASONS

    def frame(self, customer_ids: np.ndarray, item_ids: np.ndarray) -> pd.DataFrame:
        """``customer_id, placement, rank, product_id, score, reason`` with the ids spelled out."""
        import pandas as pd

        return pd.DataFrame(
            {
                "customer_id": customer_ids[self.customer],
                "placement": np.asarray(PLACEMENTS, dtype=object)[self.placement],
                "rank": self.rank,
                "product_id": item_ids[self.item],
                "score": self.score.astype(float),
                "reason": np.asarray(REASONS, dtype=object)[self.reason],
            }
        )

    def arrow(self, customer_ids: pa.Array, item_ids: pa.Array) -> pa.Table:
        """``frame`` as an Arrow table, the ids taken from the given Arrow arrays: no Python
        string per row (33M rows at 1M customers)."""
        import pyarrow as pa

        return pa.table(
            {
                "customer_id": customer_ids.take(pa.array(self.customer)),
                "placement": pa.array(PLACEMENTS).take(pa.array(self.placement)),
                "rank": pa.array(self.rank),
                "product_id": item_ids.take(pa.array(self.item)),
                "score": pa.array(self.score.astype(np.float64)),
                "reason": pa.array(REASONS).take(pa.array(self.reason)),
            }
        )


def _reason_codes(
    placement: str, anchor: np.ndarray, item: np.ndarray, similar, following, complements
) -> np.ndarray:
    """Why ``item`` is shown to a customer anchored on ``anchor`` (-1: none) in the product or
    cart placement: its signal when it has one, else the segment's popularity."""
    if placement == "product":
        return np.where(_lookup(similar, anchor, item) > 0, _SIMILAR, _POPULAR).astype(np.int8)
    f, c = _lookup(following, anchor, item), _lookup(complements, anchor, item)
    return np.where(f >= c, np.where(f > 0, _NEXT, _POPULAR), _TOGETHER).astype(np.int8)


def score_placements(
    state: dict,
    customers: pd.DataFrame,
    interactions: pd.DataFrame,
    rules: pd.DataFrame,
    available: set,
    repurchase: set,
    k: int = 10,
    placements: tuple[str, ...] = PLACEMENTS,
    threads: int = 1,
) -> Iterator[pd.DataFrame]:
    """Top-k per customer for the home, product and cart placements (or those of
    ``placements``), one frame (``customer_id, placement, rank, product_id, score, reason``) per
    batch of customers: ``score_placement_blocks`` with the ids spelled out."""
    customer_ids = customers["customer_id"].astype(str).to_numpy(dtype=object)
    item_ids = np.asarray(state["meta"]["item_ids"], dtype=object)
    for block in score_placement_blocks(
        state, customers, interactions, rules, available, repurchase, k, placements, threads
    ):
        yield block.frame(customer_ids, item_ids)


def score_placement_blocks(
    state: dict,
    customers: pd.DataFrame,
    interactions: pd.DataFrame,
    rules: pd.DataFrame,
    available: set,
    repurchase: set,
    k: int = 10,
    placements: tuple[str, ...] = PLACEMENTS,
    threads: int = 1,
) -> Iterator[PlacementBlock]:
    """Top-k per customer for the home, product and cart placements (or those of
    ``placements``), one ``PlacementBlock`` per batch of customers, in the customers' order.

    ``state`` is a fitted ``RecommenderModel.state``; ``customers`` has ``customer_id,
    segment``; ``interactions`` is the current ``int_interactions_weighted`` (history, bought
    products and each customer's last touched product, which anchors product and cart).
    Products outside ``available`` are never shown; bought ones only if in ``repurchase``.

    Every score is a placement's signal, row-normalised, plus ``POPULARITY_TIE_BREAK`` times the
    customer's segment popularity, row-normalised; ties go to the lower item index. Home scores
    come from the sparse history x item weights, in dense blocks (``models._batches``). Product
    and cart depend on the customer only through the anchor, the segment and what they bought,
    so one ranked list is made per (anchor, segment) and each customer drops their own bought
    items from it. ``threads`` blocks are scored at once (numpy and scipy release the GIL in
    the heavy steps); the blocks still come out in order.
    """
    import pandas as pd
    import scipy.sparse as sp

    items = pd.Index(np.asarray(state["meta"]["item_ids"], dtype=object), dtype=object)
    n_items = len(items)
    # Object indexes: a pandas string index converts itself to objects on every lookup.
    users = pd.Index(customers["customer_id"].astype(str).to_numpy(dtype=object), dtype=object)
    rows, cols = positions(interactions[USER], users), positions(interactions[ITEM], items)
    keep = (rows >= 0) & (cols >= 0)
    rows, cols = rows[keep], cols[keep]
    shape = (len(users), n_items)
    history = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    history.sum_duplicates()
    history.data[:] = 1.0
    bought = interactions["purchase_count"].to_numpy()[keep] > 0
    repurchasable = items.isin(list(repurchase))
    not_again = bought & ~repurchasable[cols]
    seen = sp.csr_matrix(
        (np.ones(not_again.sum(), np.float32), (rows[not_again], cols[not_again])), shape=shape
    )
    seen.sum_duplicates()
    blocked = ~items.isin(list(available))
    last = _last_touched(rows, cols, interactions["last_event_at"].to_numpy()[keep], len(users))
    # Everything below reads the history, seen and last matrices only. This generator lives for the
    # whole scoring (and the caller's write): at 1M customers the per-touch arrays and the frame
    # are ~1.5 GB that would stay resident beside every block. The caller drops its own reference
    # (orchestration/recommendations/assets.py), so the frame goes with this one.
    del rows, cols, keep, bought, not_again, interactions

    segments = pd.Index(state["meta"]["segments"])
    globally = state["popularity"].astype(np.float32)
    # One row per segment plus a last row, global popularity, for customers without a segment.
    seg_pop = np.vstack(
        [state["segment_popularity"] + globally / (globally.max() + 1.0), globally[None]]
    ).astype(np.float32)
    seg_rows = segments.get_indexer(customers["segment"].astype(object))
    seg_rows = np.where(seg_rows >= 0, seg_rows, len(segments))
    # The tie-break term per segment; -inf hides unavailable products everywhere.
    tie = POPULARITY_TIE_BREAK * _normalise_rows(seg_pop)
    tie[:, blocked] = -np.inf

    weights = sp.csr_matrix(state["weights"], dtype=np.float32)
    similar = _normalise_sparse_rows(weights)
    following = _normalise_sparse_rows(state["transitions"])
    complements = _normalise_sparse_rows(rules_matrix(rules, items))
    cart = sp.csr_matrix(0.5 * following + 0.5 * complements)
    cart.eliminate_zeros()
    # (anchor, segment) pairs in use, -1 for customers without an anchor.
    pair_keys, pair = np.unique((last + 1) * len(seg_pop) + seg_rows, return_inverse=True)
    pair_anchor, pair_seg = pair_keys // len(seg_pop) - 1, pair_keys % len(seg_pop)
    length = min(k + ANCHOR_LIST_SPARE, n_items)

    def anchor_lists(name: str, main: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        listed, scores = _anchor_lists(main, pair_anchor, pair_seg, tie, length)
        # The reason of every listed item, once per pair rather than once per customer.
        anchor_rows = np.broadcast_to(pair_anchor[:, None], listed.shape)
        reasons = _reason_codes(
            name,
            np.where(listed >= 0, anchor_rows, -1).ravel(),
            np.maximum(listed, 0).ravel(),
            similar,
            following,
            complements,
        ).reshape(listed.shape)
        return listed, scores, reasons

    # The product and cart lists side by side, one thread each (numpy's sorts and gathers release
    # the GIL): they read only shared matrices, and nothing is scored before both are made. At 1M
    # customers they took 4.6 s one after the other, on one core.
    listing = [(name, main) for name, main in (("product", similar), ("cart", cart)) if name in placements]
    lists = dict(
        zip(
            [name for name, _ in listing],
            _in_order(lambda task: anchor_lists(*task), listing, min(threads, len(listing))),
        )
    )

    def score(block: slice) -> PlacementBlock:
        block_seen = seen[block]
        block_seg, block_anchor = seg_rows[block], last[block]
        parts = []
        for code, placement in enumerate(PLACEMENTS):
            if placement not in placements:
                continue
            if placement == "home":
                personal = _normalise_sparse_rows(history[block] @ weights, product=True)
                r, item, top = _dense_top_k(personal, tie[block_seg], block_seen, None, k)
                # The score is the signal plus the tie-break, so it exceeds the tie-break alone
                # exactly where the signal is positive, but for a signal lost to float rounding:
                # those (rare) few are looked up.
                tie_alone = tie[block_seg[r], item]
                signal = top > tie_alone
                unsure = np.flatnonzero(top == tie_alone)
                signal[unsure] = _lookup(personal, r[unsure], item[unsure]) > 0
                reason = np.where(signal, _PERSONAL, _POPULAR).astype(np.int8)
            else:
                main = similar if placement == "product" else cart
                r, item, top, short, at = _listed_top_k(lists[placement][:2], pair[block], block_seen, k)
                reason = lists[placement][2][pair[block][r], at]
                if len(short):
                    anchor = block_anchor[short]
                    has = sp.diags((anchor >= 0).astype(np.float32))
                    anchored = sp.csr_matrix(has @ main[np.where(anchor >= 0, anchor, 0)])
                    sr, si, ss = _dense_top_k(anchored, tie[block_seg[short]], block_seen[short], anchor, k)
                    sreason = _reason_codes(placement, anchor[sr], si, similar, following, complements)
                    r = np.concatenate([r, short[sr]])
                    item, top = np.concatenate([item, si]), np.concatenate([top, ss])
                    reason = np.concatenate([reason, sreason])
                    order = np.lexsort((item, -top, r))
                    r, item, top, reason = r[order], item[order], top[order], reason[order]
            rank = np.arange(len(r)) - np.searchsorted(r, r) + 1
            parts.append(
                (r + block.start, np.full(len(r), code, np.int8), rank.astype(np.int32), item, top, reason)
            )
        return PlacementBlock(*(np.concatenate(column) for column in zip(*parts)))

    yield from _in_order(score, models._batches(len(users), n_items), threads)


def _in_order(work, tasks, threads: int) -> Iterator:
    """``work(task)`` for each task, results in the tasks' order; ``threads`` at a time, with
    at most two results per thread waiting (each holds a block's dense scores while it runs)."""
    if threads <= 1:
        yield from map(work, tasks)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque = deque()
        for task in tasks:
            pending.append(pool.submit(work, task))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
