"""Product recommendations: interaction matrix, popularity fallback, item-item CF, next-item
transitions, and the MLflow pyfunc that serves them.

The collaborative model is EASE^R (Steck 2019, "Embarrassingly Shallow Autoencoders"): a
closed-form item-item weight matrix ``B = argmin ||X - XB||² + λ||B||², diag(B) = 0``. It
needs a dense ``n_items x n_items`` solve, so it is used up to ``MAX_EASE_ITEMS`` items
(a float32 Cholesky inverse; the Gram matrix ``X'X`` is computed once per λ search, see
``tune_l2``); above that the model falls back to
BM25-weighted item-kNN, which only needs a sparse ``X'X``. Both keep the ``neighbours``
largest weights per item, so scoring is a sparse product and the served artefact stays small.

Conventions: users and items are row/column indices of a CSR matrix built by
``build_interaction_matrix``; top-k results are ``(item_idx, scores)`` arrays of shape
``n x k``, best first, with item ``-1`` (score ``-inf``) in slots that have no candidate.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np

from ml.pyfunc import lazy_subclass, python_model
from ml.recommendations.ranking import ndcg_at_k

if TYPE_CHECKING:
    import pandas as pd
    import scipy.sparse as sp

USER, ITEM, WEIGHT, TIME = "customer_id", "product_id", "weight", "event_time"

# Dense EASE solve limit: the Gram matrix is n_items² float32 (15k items = 0.9 GB, and a λ search
# holds it beside the one being inverted).
MAX_EASE_ITEMS = 15_000
# Chosen on MovieLens 100k with a validation split carved from training data (see
# ml/movielens.py): validation NDCG@10 was 0.153/0.157/0.161/0.161/0.162/0.159 for
# λ = 50/100/200/300/500/1000. λ grows with data volume, so platforms re-tune with
# ``tune_l2`` (as ``compare_on_split`` does) rather than trust this default.
DEFAULT_L2 = 500.0
# Kept weights per item. On MovieLens 100k, 200 of 1,682 keeps NDCG@10 within 2% of dense
# EASE (0.189 vs 0.192) and makes a 10k-item model ~25 MB instead of 400 MB.
DEFAULT_NEIGHBOURS = 200
# BM25 item-kNN fallback (implicit's BM25Recommender defaults, K raised to 100).
BM25_K1, BM25_B, KNN_NEIGHBOURS = 1.2, 0.75, 100
# Dense score block per batch: ~80 MB of float32 whatever the catalogue size.
SCORE_BLOCK_CELLS = 20_000_000


# ---------------------------------------------------------------- interaction matrix


@dataclass
class InteractionMatrix:
    """A user x item CSR matrix with the ids of its rows and columns."""

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __post_init__(self) -> None:
        import pandas as pd

        self.user_index = pd.Index(self.user_ids)
        self.item_index = pd.Index(self.item_ids)

    def user_indices(self, ids: Iterable) -> np.ndarray:
        """Row index of each id, -1 for ids not in the matrix."""
        return _indexer(self.user_index, ids)

    def item_indices(self, ids: Iterable) -> np.ndarray:
        """Column index of each id, -1 for ids not in the matrix."""
        return _indexer(self.item_index, ids)


def _array_like(ids: Iterable):
    """Columns and arrays as they are: list() of a pyarrow-backed column makes one Python string
    per row, 5x slower than looking the column up whole (minutes for 1M customers' transitions)."""
    import pandas as pd

    return ids if isinstance(ids, (pd.Series, pd.Index, np.ndarray)) else list(ids)


def _arrow_strings(ids):
    """``ids`` as an Arrow string array when they already are one (Arrow columns, pandas' Arrow-
    backed ``str`` columns such as DuckDB results give), else None."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(ids, (pd.Series, pd.Index)) and isinstance(ids.dtype, pd.StringDtype):
        if ids.dtype.storage != "pyarrow":
            return None
        ids = ids.array.__arrow_array__()
    if isinstance(ids, (pa.Array, pa.ChunkedArray)) and (
        pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)
    ):
        return ids
    return None


def _indexer(index: pd.Index, ids) -> np.ndarray:
    """``index.get_indexer(ids)`` (position of each id, -1 when absent; ``index`` unique). An
    Arrow-backed string column is matched by Arrow's hash kernel: pandas would first turn every
    row into a Python string (9 s for the ~20M transition pairs at 1M customers)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _arrow_strings(ids)
    if column is not None and index.is_unique:
        try:
            values = pa.array(np.asarray(index, dtype=object), type=column.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # an index of other than strings
            values = None
        if values is not None:
            at = pc.index_in(column, value_set=values).fill_null(-1)
            return np.asarray(at.to_numpy(), dtype=np.intp)
    return index.get_indexer(_array_like(ids))


def build_interaction_matrix(
    interactions: pd.DataFrame,
    user_ids: Sequence | None = None,
    item_ids: Sequence | None = None,
) -> InteractionMatrix:
    """Sum ``weight`` per (customer_id, product_id) into a CSR matrix.

    Pass ``user_ids``/``item_ids`` to reuse another matrix's index (e.g. a test matrix
    aligned with the training one); rows whose ids are not in them are dropped. Without a
    ``weight`` column every row counts 1.
    """
    import pandas as pd
    import scipy.sparse as sp

    missing = {USER, ITEM} - set(interactions.columns)
    if missing:
        raise ValueError(f"interactions lack columns {sorted(missing)}")
    users = pd.Index(pd.unique(interactions[USER]) if user_ids is None else list(user_ids))
    items = pd.Index(pd.unique(interactions[ITEM]) if item_ids is None else list(item_ids))
    if user_ids is None:
        users = users.sort_values()
    if item_ids is None:
        items = items.sort_values()
    rows = _indexer(users, interactions[USER])
    cols = _indexer(items, interactions[ITEM])
    weights = (
        interactions[WEIGHT].to_numpy(dtype=np.float32)
        if WEIGHT in interactions
        else np.ones(len(interactions), dtype=np.float32)
    )
    keep = (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix(
        (weights[keep], (rows[keep], cols[keep])), shape=(len(users), len(items)), dtype=np.float32
    )
    matrix.sum_duplicates()
    return InteractionMatrix(matrix, users.to_numpy(), items.to_numpy())


def interaction_matrix_from_arrow(customer_ids, product_ids, weights) -> InteractionMatrix:
    """``build_interaction_matrix`` from Arrow columns (e.g. of a DuckDB result's Arrow table),
    without a DataFrame: ids are sorted and coded by Arrow's C++ kernels, so 33M rows never
    become 33M Python strings. Rows with a null id are dropped; a null weight counts 0."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def coded(column) -> tuple[np.ndarray, np.ndarray]:
        column = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
        ids = pc.unique(column).drop_null()
        ids = ids.take(pc.sort_indices(ids))
        codes = pc.index_in(column, value_set=ids).fill_null(-1).to_numpy()
        return codes, ids.to_numpy(zero_copy_only=False)

    rows, users = coded(customer_ids)
    cols, items = coded(product_ids)
    weights = pc.fill_null(weights, 0).to_numpy().astype(np.float32, copy=False)
    keep = (rows >= 0) & (cols >= 0)
    if not keep.all():
        rows, cols, weights = rows[keep], cols[keep], weights[keep]
    return interaction_matrix_from_codes(rows, cols, weights, users, items)


def interaction_matrix_from_codes(rows, cols, weights, user_ids, item_ids) -> InteractionMatrix:
    """The matrix of touches given as positions in ``user_ids`` and ``item_ids`` (int32 arrays,
    every code valid) with float32 ``weights``, in any row order: a (user, item) pair given
    twice is summed, and the CSR comes out canonical (indices sorted within each row)."""
    import scipy.sparse as sp

    matrix = sp.csr_matrix((weights, (rows, cols)), shape=(len(user_ids), len(item_ids)), dtype=np.float32)
    matrix.sum_duplicates()
    return InteractionMatrix(matrix, user_ids, item_ids)


def holdout_last_per_user(
    interactions: pd.DataFrame, fraction: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Temporal per-user split: each user's last ``fraction`` of interactions (by
    ``event_time``, ties broken by product id) become the held-out set.

    A user with n interactions keeps ``ceil((1 - fraction) * n)`` of them for training, so
    everyone keeps at least one and single-interaction users hold nothing out.
    """
    keys = [USER, TIME, ITEM]
    # The warehouse hands the touches over in this order already (read_evaluation_touches): a
    # stable sort would keep them as they are, so checking is enough (5 s less at 1M customers).
    ordered = (
        interactions if _sorted_by(interactions, keys) else interactions.sort_values(keys, kind="stable")
    )
    position = ordered.groupby(USER).cumcount().to_numpy()
    count = ordered.groupby(USER)[ITEM].transform("size").to_numpy()
    held_out = position >= np.ceil((1.0 - fraction) * count - 1e-9)
    return ordered[~held_out], ordered[held_out]


def _sorted_by(frame: pd.DataFrame, columns: Sequence[str]) -> bool:
    """Whether ``frame``'s rows are in ascending order of ``columns`` (ties allowed), checked
    in Arrow. False when unsure: a column with nulls or of a type other than string or
    datetime (``sort_values`` would then decide)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(frame) < 2:
        return True
    arrays = []
    for column in columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            array = pa.array(values.to_numpy())
        else:
            array = _arrow_strings(values)
        if array is None or array.null_count:
            return False
        arrays.append(array)
    # Row k is at most row k + 1 when it is less on a column and equal on every column before.
    in_order = None
    for array in reversed(arrays):
        before, after = array.slice(0, len(array) - 1), array.slice(1)
        less, equal = pc.less(before, after), pc.equal(before, after)
        in_order = pc.or_(less, equal) if in_order is None else pc.or_(less, pc.and_(equal, in_order))
    return pc.all(in_order).as_py()


# ---------------------------------------------------------------- top-k helpers


def top_k_from_scores(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns per row of a dense score block, ties broken by the lower column
    index (so a ranking is reproducible whatever computed it); ``-inf`` entries are never
    chosen."""
    n_rows, n_cols = scores.shape
    idx = np.full((n_rows, k), -1, dtype=np.int64)
    top = np.full((n_rows, k), -np.inf, dtype=np.float32)
    take = min(k, n_cols)
    if take <= 0 or n_rows == 0:
        return idx, top
    # The take-th largest of the column chunks' maxima is at most the take-th largest score, so
    # every winner is >= it, and with ~8 chunks per winner few losers are. Two passes over the
    # block instead of argpartition's selection (~40x slower on 10k columns).
    width = max(1, n_cols // (8 * take))
    maxima = np.maximum.reduceat(scores, np.arange(0, n_cols, width), axis=1)
    threshold = np.partition(maxima, maxima.shape[1] - take, axis=1)[:, maxima.shape[1] - take]
    # Never -inf: a row with fewer than k finite scores offers only those.
    threshold = np.maximum(threshold, np.finfo(scores.dtype).min if scores.dtype.kind == "f" else -np.inf)
    rows, cols = np.nonzero(scores >= threshold[:, None])
    values = scores[rows, cols]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = rank < take
    idx[rows[keep], rank[keep]] = cols[keep]
    top[rows[keep], rank[keep]] = values[keep]
    return idx, top


def _mask(scores: np.ndarray, exclude_rows: sp.csr_matrix | None) -> None:
    if exclude_rows is not None and exclude_rows.nnz:
        r, c = exclude_rows.nonzero()
        scores[r, c] = -np.inf


def _exclude_rows(exclude: sp.spmatrix | None, user_indices: np.ndarray) -> sp.csr_matrix | None:
    import scipy.sparse as sp

    return None if exclude is None else sp.csr_matrix(exclude)[user_indices]


def _batches(n: int, n_items: int) -> Iterable[slice]:
    size = max(1, SCORE_BLOCK_CELLS // max(n_items, 1))
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _top_weights_per_row(dense: np.ndarray, keep: int) -> sp.csr_matrix:
    """Keep the ``keep`` largest-magnitude entries of each row (negatives matter in EASE).

    Blocks of rows go to one thread per core (at most 4): numpy's
    argpartition releases the GIL, and this pass was single-threaded ~2 s of every EASE fit at
    10k items (0.8 s on two cores). Small blocks keep both threads busy to the end and each
    block's temporaries (|block| and its argpartition) small."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import scipy.sparse as sp

    n_rows, n_cols = dense.shape
    if keep >= n_cols:
        return sp.csr_matrix(dense)

    def top(rows: slice) -> sp.csr_matrix:
        block = dense[rows]
        cols = np.argpartition(-np.abs(block), keep - 1, axis=1)[:, :keep]
        values = np.take_along_axis(block, cols, axis=1)
        r = np.repeat(np.arange(block.shape[0]), keep)
        return sp.csr_matrix((values.ravel(), (r, cols.ravel())), shape=block.shape)

    size = max(1, min(512, SCORE_BLOCK_CELLS // max(n_cols, 1)))
    blocks = [slice(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]
    threads = min(4, os.cpu_count() or 1)
    if threads > 1 and len(blocks) > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="ease-top-k") as pool:
            parts = list(pool.map(top, blocks))
    else:
        parts = [top(rows) for rows in blocks]
    out = sp.vstack(parts).tocsr()
    out.eliminate_zeros()
    return out


# ---------------------------------------------------------------- popularity


class PopularityRecommender:
    """Most-bought items (distinct customers per item), globally or within a segment."""

    def fit(self, user_item: sp.spmatrix, user_segments: Sequence | None = None) -> PopularityRecommender:
        """``user_segments`` gives each matrix row's segment label (None: global only)."""
        import pandas as pd
        import scipy.sparse as sp

        binary = sp.csr_matrix(user_item, copy=True)
        binary.data = np.ones_like(binary.data)
        self.scores_ = np.asarray(binary.sum(axis=0), dtype=np.float32).ravel()
        self.segment_scores_: dict[str, np.ndarray] = {}
        if user_segments is not None:
            labels = pd.Series(list(user_segments), dtype="object")
            for segment, rows in labels.groupby(labels).groups.items():
                seg = np.asarray(binary[np.asarray(rows)].sum(axis=0), dtype=np.float32).ravel()
                self.segment_scores_[str(segment)] = seg
        return self

    def item_scores(self, segment: str | None = None) -> np.ndarray:
        """Segment popularity with a tiny global tie-break, global when the segment is unknown."""
        base = self.scores_
        if segment is not None and str(segment) in self.segment_scores_:
            return self.segment_scores_[str(segment)] + base / (base.max() + 1.0)
        return base

    def recommend(
        self,
        user_indices: np.ndarray,
        k: int = 10,
        exclude: sp.spmatrix | None = None,
        segments: Sequence | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        user_indices = np.asarray(user_indices)
        labels = [None] * len(user_indices) if segments is None else list(segments)
        exclude_rows = _exclude_rows(exclude, user_indices)
        idx_out, score_out = [], []
        for rows in _batches(len(user_indices), len(self.scores_)):
            scores = np.vstack([self.item_scores(s) for s in labels[rows]]).astype(np.float32)
            _mask(scores, None if exclude_rows is None else exclude_rows[rows])
            idx, top = top_k_from_scores(scores, k)
            idx_out.append(idx)
            score_out.append(top)
        return _stack(idx_out, score_out, k)


def _stack(idx: list, scores: list, k: int) -> tuple[np.ndarray, np.ndarray]:
    if not idx:
        return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
    return np.vstack(idx), np.vstack(scores)


# ---------------------------------------------------------------- collaborative filtering


def gram_matrix(user_item: sp.spmatrix, dtype=np.float32) -> np.ndarray:
    """Dense ``X'X`` of the binarised user x item matrix: the part of EASE that does not depend on
    λ, so a λ search computes it once per matrix."""
    x = _binary(user_item)
    # Counts of co-occurring customers are integers far below 2^24: exact in float32.
    return np.asarray((x.T @ x).toarray(), dtype=dtype)


def ease_weights(
    user_item: sp.spmatrix | None, l2: float, gram: np.ndarray | None = None, dtype=np.float32
) -> np.ndarray:
    """Dense EASE^R item-item weights B (diag 0) for a binarised user x item matrix (or its
    ``gram_matrix``, which is left unchanged).

    float32 by default: half the memory of float64 and about twice the LAPACK speed, and the
    weights agree with float64's to ~1e-6 relative for λ >= 1 (the kept neighbours and the
    rankings do not change; tests/ml/recommendations compare them)."""
    from scipy.linalg import lapack

    if gram is None:
        gram = gram_matrix(user_item, dtype)
    matrix = np.array(gram, dtype=dtype, order="F", copy=True)
    matrix[np.diag_indices_from(matrix)] += l2
    potrf, potri = (
        (lapack.spotrf, lapack.spotri) if matrix.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    )
    # Cholesky inverse: half the flops of a general inverse, and the matrix is SPD. In place on a
    # Fortran-ordered copy, so LAPACK makes no copy of its own.
    factor, info = potrf(matrix, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE Gram matrix not positive definite (potrf info={info})")
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE inverse failed (potri info={info})")
    # Fortran order with the upper triangle filled: its transpose is a C-ordered view with the
    # lower one filled (the matrix is symmetric, so that is the same inverse).
    inverse = inverse.T
    _mirror_lower(inverse)
    inverse /= -np.diag(inverse).copy()
    np.fill_diagonal(inverse, 0.0)
    return inverse


def _mirror_lower(matrix: np.ndarray, block: int = 1024) -> None:
    """Copy the lower triangle onto the upper one in place, a block of rows at a time (np.tril
    and a transpose of the whole would hold two more n x n copies)."""
    n = matrix.shape[0]
    for start in range(0, n, block):
        end = min(start + block, n)
        # Columns start:end above the diagonal block mirror rows start:end left of it.
        matrix[:start, start:end] = matrix[start:end, :start].T
        diagonal = np.tril(matrix[start:end, start:end])
        matrix[start:end, start:end] = diagonal + np.tril(diagonal, -1).T


def bm25_knn_weights(user_item: sp.spmatrix, neighbours: int = KNN_NEIGHBOURS) -> sp.csr_matrix:
    """Item-item dot products of BM25-weighted item vectors, ``neighbours`` per item."""
    import scipy.sparse as sp

    item_user = sp.coo_matrix(sp.csr_matrix(user_item).T)
    n_users = item_user.shape[1]
    idf = np.log(n_users) - np.log1p(np.bincount(item_user.col, minlength=n_users))
    lengths = np.asarray(item_user.tocsr().sum(axis=1)).ravel()
    norm = (1.0 - BM25_B) + BM25_B * lengths / max(lengths.mean(), 1e-12)
    data = item_user.data * (BM25_K1 + 1.0) / (BM25_K1 * norm[item_user.row] + item_user.data)
    weighted = sp.csr_matrix(
        (data * idf[item_user.col], (item_user.row, item_user.col)), shape=item_user.shape
    )
    similarity = (weighted @ weighted.T).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return _top_sparse_per_row(similarity, neighbours)


def _top_sparse_per_row(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        data = matrix.data[start:end]
        take = np.argsort(-data, kind="stable")[:keep]
        rows.append(np.full(len(take), r))
        cols.append(matrix.indices[start:end][take])
        vals.append(data[take])
    if not rows:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=matrix.shape,
        dtype=np.float32,
    )


class ItemItemRecommender:
    """Scores = user history (binary) x item-item weights; EASE^R up to ``max_ease_items``
    items, BM25 item-kNN above. ``weights_[i, j]`` is how much owning i recommends j."""

    def __init__(
        self,
        l2: float = DEFAULT_L2,
        neighbours: int = DEFAULT_NEIGHBOURS,
        max_ease_items: int = MAX_EASE_ITEMS,
    ):
        self.l2 = l2
        self.neighbours = neighbours
        self.max_ease_items = max_ease_items

    def fit(self, user_item: sp.spmatrix, gram: np.ndarray | None = None) -> ItemItemRecommender:
        """``gram``: ``gram_matrix(user_item)`` when the caller already has it (a λ search)."""
        import scipy.sparse as sp

        user_item = sp.csr_matrix(user_item)
        if user_item.shape[1] <= self.max_ease_items:
            self.method_ = "ease"
            dense = ease_weights(user_item, self.l2, gram=gram)
            self.weights_ = _top_weights_per_row(dense, self.neighbours).astype(np.float32)
            del dense
        else:
            self.method_ = "bm25_knn"
            self.weights_ = bm25_knn_weights(user_item, min(self.neighbours, KNN_NEIGHBOURS))
        self.history_ = _binary(user_item)
        return self

    @property
    def n_items(self) -> int:
        return self.weights_.shape[0]

    def score_histories(self, histories: sp.spmatrix) -> np.ndarray:
        """Dense scores for arbitrary history rows (binary user x item)."""
        return np.asarray((_binary(histories) @ self.weights_).toarray(), dtype=np.float32)

    def recommend(
        self, user_indices: np.ndarray, k: int = 10, exclude: sp.spmatrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for rows of the fitted matrix; ``exclude`` is a user x item matrix
        (same rows as the fitted one, usually the training matrix) of items not to show."""
        user_indices = np.asarray(user_indices)
        exclude_rows = _exclude_rows(exclude, user_indices)
        idx_out, score_out = [], []
        for rows in _batches(len(user_indices), self.n_items):
            scores = self.score_histories(self.history_[user_indices[rows]])
            _mask(scores, None if exclude_rows is None else exclude_rows[rows])
            idx, top = top_k_from_scores(scores, k)
            idx_out.append(idx)
            score_out.append(top)
        return _stack(idx_out, score_out, k)

    def similar_items(self, item_indices: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items with the largest positive weight from each given item (product page)."""
        return _top_positive_rows(self.weights_, np.asarray(item_indices), k)


def _binary(matrix: sp.spmatrix) -> sp.csr_matrix:
    import scipy.sparse as sp

    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data = np.ones_like(out.data)
    return out


def _top_positive_rows(matrix: sp.csr_matrix, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    idx_out, score_out = [], []
    for batch in _batches(len(rows), matrix.shape[1]):
        dense = matrix[rows[batch]].toarray().astype(np.float32)
        dense[dense <= 0] = -np.inf
        dense[np.arange(dense.shape[0]), rows[batch]] = -np.inf
        idx, top = top_k_from_scores(dense, k)
        idx_out.append(idx)
        score_out.append(top)
    return _stack(idx_out, score_out, k)


L2_GRID = (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0)
# Validation customers each λ is scored on (a fixed seeded sample; all of them when fewer). Scoring
# the validation set is half of each λ's cost at 100k customers; NDCG differences between λ are
# systematic (the same customers rank better or worse), so 20,000 order them as all do: the M
# platform data picked the same λ with every customer and with this sample (benchmark note).
VALIDATION_USERS = 20_000


def tune_l2(
    train: sp.spmatrix,
    validation: sp.spmatrix,
    grid: Sequence[float] = L2_GRID,
    k: int = 10,
    neighbours: int = DEFAULT_NEIGHBOURS,
    start: float | None = None,
    coarse: bool = True,
    max_users: int | None = VALIDATION_USERS,
) -> tuple[float, dict[float, float]]:
    """Pick EASE's λ by validation NDCG@k. ``validation`` must be carved from training
    data (never the test set) and share ``train``'s rows and columns.

    The search climbs the grid: from its first λ it fits the grid neighbours of the best λ so far
    until both of the best's neighbours are fitted. It starts from ``start`` (the champion's λ),
    else from every other λ of the grid (``coarse``, the largest included), else from the whole
    grid. Each λ costs a dense solve, so a search from the champion fits about 3 λ, a coarse one
    4-5 of the 6, and both pick the full grid's choice whenever validation NDCG is unimodal in
    λ (it was on MovieLens, the demo, a synthetic set and the M platform data). Ties go to the
    smaller λ. ``max_users``: score a fixed sample of this many validation customers (None: all).
    Returns the best λ and the NDCG of every λ fitted."""
    import scipy.sparse as sp

    validation = sp.csr_matrix(validation)
    users = np.flatnonzero(np.diff(validation.indptr) > 0)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(0).choice(users, max_users, replace=False))
    relevant = validation[users]
    train = sp.csr_matrix(train)
    # X'X does not depend on λ: one product for the whole search.
    gram = gram_matrix(train) if train.shape[1] <= MAX_EASE_ITEMS else None
    results: dict[float, float] = {}

    def score(l2: float) -> None:
        if l2 not in results:
            model = ItemItemRecommender(l2=l2, neighbours=neighbours).fit(train, gram=gram)
            top, _ = model.recommend(users, k, exclude=train)
            results[l2] = ndcg_at_k(top, relevant)

    values = sorted({float(v) for v in grid} | ({float(start)} if start is not None else set()))
    if start is not None:
        first = [float(start)]
    elif coarse:
        first = values[(len(values) - 1) % 2 :: 2]
    else:
        first = values
    for l2 in first:
        score(l2)
    while True:
        at = values.index(max(sorted(results), key=results.get))
        pending = [values[i] for i in (at - 1, at + 1) if 0 <= i < len(values) and values[i] not in results]
        if not pending:
            break
        for l2 in pending:
            score(l2)
    best = max(sorted(results), key=results.get)
    return best, results


# ---------------------------------------------------------------- next-item transitions


class TransitionModel:
    """Row-normalised counts of item -> next item in each user's time-ordered history
    (repeats of the same item are skipped: they say nothing about what comes next)."""

    def fit(self, interactions: pd.DataFrame, matrix: InteractionMatrix) -> TransitionModel:
        import scipy.sparse as sp

        ordered = interactions.sort_values([USER, TIME, ITEM], kind="stable")
        users = matrix.user_indices(ordered[USER])
        items = matrix.item_indices(ordered[ITEM])
        keep = (users >= 0) & (items >= 0)
        users, items = users[keep], items[keep]
        same_user = users[1:] == users[:-1]
        moved = items[1:] != items[:-1]
        pair = same_user & moved
        n = len(matrix.item_ids)
        counts = sp.csr_matrix(
            (np.ones(pair.sum(), dtype=np.float32), (items[:-1][pair], items[1:][pair])), shape=(n, n)
        )
        return self._normalise(counts)

    @classmethod
    def from_counts(cls, counts: pd.DataFrame, matrix: InteractionMatrix) -> TransitionModel:
        """The same model from counts already made (``from_product, to_product, transitions``,
        e.g. in SQL over every touch, which need not fit in memory); products outside ``matrix``
        are left out."""
        import scipy.sparse as sp

        a = matrix.item_indices(counts["from_product"])
        b = matrix.item_indices(counts["to_product"])
        keep = (a >= 0) & (b >= 0)
        n = len(matrix.item_ids)
        weights = counts["transitions"].to_numpy(dtype=np.float32)[keep]
        return cls()._normalise(sp.csr_matrix((weights, (a[keep], b[keep])), shape=(n, n)))

    def _normalise(self, counts: sp.csr_matrix) -> TransitionModel:
        import scipy.sparse as sp

        counts.sum_duplicates()
        totals = np.asarray(counts.sum(axis=1)).ravel()
        self.probabilities_ = sp.diags(1.0 / np.maximum(totals, 1.0)).astype(np.float32) @ counts
        self.probabilities_ = sp.csr_matrix(self.probabilities_, dtype=np.float32)
        return self

    def next_items(self, last_item_indices: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Most likely next items after each given item, with their transition probability."""
        return _top_positive_rows(self.probabilities_, np.asarray(last_item_indices), k)


# ---------------------------------------------------------------- serving (MLflow pyfunc)

REASON_PERSONAL, REASON_CART, REASON_POPULAR = "personal", "cart", "popular"
# Share of a known customer's score given to cart signals when a cart is present.
CART_WEIGHT = 0.5
# Where a served model reads customers' histories when the caller gives none: the relation it
# was trained on (orchestration/recommendations/assets.py INTERACTIONS_TABLE).
HISTORY_TABLE = "intermediate.int_interactions_weighted"


class HistoryUnavailable(RuntimeError):
    """The served model was asked about customers without a ``history`` column and cannot read
    the warehouse that holds their histories."""


class InMemoryHistory:
    """Binary customer x product rows of the training interactions, for models fitted in this
    process (``fit_recommender``: unit tests, evaluations). Never written as an artefact."""

    def __init__(self, user_ids: Sequence, history: sp.spmatrix):
        import pandas as pd

        self.users = pd.Index([str(u) for u in user_ids])
        self.history = _binary(history)

    def rows(self, customers: np.ndarray, items: pd.Index) -> sp.csr_matrix:
        import pandas as pd
        import scipy.sparse as sp

        users = self.users.get_indexer(pd.Index(customers))
        known = users >= 0
        rows = sp.diags(known.astype(np.float32)) @ self.history[np.where(known, users, 0)]
        rows = sp.csr_matrix(rows)
        rows.eliminate_zeros()
        return rows


class WarehouseHistory:
    """Customers' histories read at serving time, read-only, from the relation the model was
    trained on (``HISTORY_TABLE``) in the DuckDB warehouse of ``c360.settings`` (``C360_HOME`` /
    ``C360_WAREHOUSE``): every (customer, product) row counts 1, as in training. An erased
    customer has no rows left, so the model treats them as a stranger."""

    def __init__(self, table: str = HISTORY_TABLE, path: str | Path | None = None):
        from c360.settings import get_settings

        self.table = table
        self.path = Path(path or get_settings().warehouse)
        self._con = None

    def __enter__(self) -> Self:
        from c360.warehouse import connect

        hint = (
            "pass each customer's history (comma-separated product ids) in the `history` input column instead"
        )
        if not self.path.exists():
            raise HistoryUnavailable(
                f"the recommender reads customers' histories from {self.table} in the warehouse "
                f"{self.path}, which does not exist: {hint}"
            )
        try:
            self._con = connect(self.path, read_only=True)
        except Exception as exc:
            raise HistoryUnavailable(
                f"the recommender reads customers' histories from {self.table} in the warehouse "
                f"{self.path}, which cannot be opened ({exc}): {hint}"
            ) from exc
        return self

    def __exit__(self, *exc) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def rows(self, customers: np.ndarray, items: pd.Index) -> sp.csr_matrix:
        import pandas as pd

        from c360.warehouse import Error as WarehouseError

        users = pd.Index(customers)
        try:
            found = self._con.execute(
                f"select distinct cast(customer_id as varchar) as customer_id, "
                f"cast(product_id as varchar) as product_id from {self.table} "
                "where cast(customer_id as varchar) in (select unnest(?))",
                [sorted(set(users.astype(str)))],
            ).df()
        except WarehouseError as exc:
            raise HistoryUnavailable(
                f"cannot read customers' histories from {self.table} in the warehouse {self.path} "
                f"({exc}): pass them in the `history` input column instead"
            ) from exc
        return _history_rows(users, items, found[USER], found[ITEM])


def _history_rows(users: pd.Index, items: pd.Index, user_col, item_col) -> sp.csr_matrix:
    """Binary rows (one per entry of ``users``, duplicates included) over ``items`` from
    (customer, product) pairs; products the model does not know are dropped."""
    import pandas as pd
    import scipy.sparse as sp

    unique = pd.Index(pd.unique(users.to_numpy()))
    rows = unique.get_indexer(_array_like(user_col))
    cols = items.get_indexer(_array_like(item_col))
    keep = (rows >= 0) & (cols >= 0)
    per_customer = sp.csr_matrix(
        (np.ones(keep.sum(), np.float32), (rows[keep], cols[keep])), shape=(len(unique), len(items))
    )
    per_customer.sum_duplicates()
    per_customer.data[:] = 1.0
    return per_customer[unique.get_indexer(users)]


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` at zlib level 1 instead of 6: at 1M customers the ~20M next-item
    transitions took 8 s to write at level 6 and take under 2 s at level 1, for 10% more bytes.
    ``np.load`` reads it as any .npz."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


class _RecommenderModel:
    """Serves top-k recommendations from saved artefacts.

    The artefacts hold only item-keyed parts: item-item weights, next-item transitions,
    popularity (global and per segment), product ids, segment names, the repurchase and
    unavailable lists and the fit's parameters. No customer id and no history: erasing a person
    in the warehouse erases them from what every model version serves. A customer's history
    comes, in this order, from the caller's ``history`` column (product ids), from the training
    interactions kept in memory by ``fit_recommender`` (never saved), or from the warehouse at
    serving time (``WarehouseHistory``). ``customer_id``/``product_id`` are served as strings.
    """

    def __init__(self) -> None:
        self.state: dict | None = None
        self.memory: InMemoryHistory | None = None

    @classmethod
    def from_fitted(
        cls,
        matrix: InteractionMatrix,
        cf: ItemItemRecommender,
        popularity: PopularityRecommender,
        transitions: TransitionModel,
        allow_repurchase: Iterable = (),
        unavailable: Iterable = (),
        keep_history: bool = True,
    ) -> _RecommenderModel:
        """Bundle fitted parts; ``allow_repurchase`` lists product ids that may be shown
        again to customers who already bought them (consumables); ``unavailable`` lists
        product ids never to show (discontinued). ``keep_history`` keeps the training histories
        in memory for ``predict`` in this process (they are never written)."""
        import scipy.sparse as sp

        model = cls()
        segments = sorted(popularity.segment_scores_)
        model.state = {
            "weights": sp.csr_matrix(cf.weights_, dtype=np.float32),
            "transitions": transitions.probabilities_,
            "popularity": popularity.scores_,
            "segment_popularity": np.vstack([popularity.segment_scores_[s] for s in segments])
            if segments
            else np.zeros((0, len(popularity.scores_)), dtype=np.float32),
            "meta": {
                "item_ids": [str(i) for i in matrix.item_ids],
                "segments": segments,
                "allow_repurchase": sorted(str(i) for i in allow_repurchase),
                "unavailable": sorted(str(i) for i in unavailable),
                "method": cf.method_,
                "l2": cf.l2,
                "neighbours": cf.neighbours,
                "history_table": HISTORY_TABLE,
            },
        }
        if keep_history:
            model.memory = InMemoryHistory(matrix.user_ids, matrix.matrix)
        model._index()
        return model

    def _index(self) -> None:
        import pandas as pd

        meta = self.state["meta"]
        self._items = pd.Index(meta["item_ids"])
        self._segments = {s: i for i, s in enumerate(meta["segments"])}
        self._repurchase = self._items.get_indexer(meta["allow_repurchase"])
        self._repurchase = self._repurchase[self._repurchase >= 0]
        self._unavailable = self._items.get_indexer(meta.get("unavailable", []))
        self._unavailable = self._unavailable[self._unavailable >= 0]

    def __getstate__(self) -> dict:
        # MLflow pickles the python_model; the arrays travel as artefacts instead, and the
        # in-memory histories never leave the process.
        return {"state": None, "memory": None}

    def write_artefacts(self, directory: str | Path) -> dict[str, str]:
        """Save the item-keyed arrays as .npz and ids as JSON; returns MLflow's ``artifacts``
        mapping. Nothing written is keyed by customer."""
        import scipy.sparse as sp

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {name: directory / f"{name}.npz" for name in ("weights", "transitions")}
        for name, path in paths.items():
            matrix = sp.csr_matrix(self.state[name])
            # What sp.save_npz writes (sp.load_npz reads it back), faster compressed.
            _save_npz(
                path,
                indices=matrix.indices,
                indptr=matrix.indptr,
                format=np.array(matrix.format.encode("ascii")),
                shape=np.array(matrix.shape),
                data=matrix.data,
            )
        paths["popularity"] = directory / "popularity.npz"
        _save_npz(
            paths["popularity"], globally=self.state["popularity"], segments=self.state["segment_popularity"]
        )
        paths["meta"] = directory / "meta.json"
        paths["meta"].write_text(json.dumps(self.state["meta"]))
        return {name: str(path) for name, path in paths.items()}

    def load_context(self, context) -> None:
        import scipy.sparse as sp

        artefacts = context.artifacts
        popularity = np.load(artefacts["popularity"])
        self.state = {
            **{name: sp.load_npz(artefacts[name]).tocsr() for name in ("weights", "transitions")},
            "popularity": popularity["globally"],
            "segment_popularity": popularity["segments"],
            "meta": json.loads(Path(artefacts["meta"]).read_text()),
        }
        self.memory = None
        self._index()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """``customer_id`` [+ ``history``, ``cart`` (lists or comma-separated strings), +
        ``segment``] -> ``customer_id, rank, product_id, score, reason`` (top ``params['k']``,
        default 10).

        With a ``history`` column, it is each customer's whole history (empty: a stranger) and
        nothing else is read. Without it, histories come from the training interactions of a
        model fitted in this process, else from the warehouse (``WarehouseHistory``); a
        warehouse that cannot be read raises ``HistoryUnavailable``, never falls back silently.
        """
        import pandas as pd

        k = int((params or {}).get("k", 10))
        frame = pd.DataFrame(model_input)
        customers = frame["customer_id"].astype(str).to_numpy()
        carts = [_parse_ids(c) for c in frame["cart"]] if "cart" in frame else [[] for _ in customers]
        segments = list(frame["segment"]) if "segment" in frame else [None] * len(customers)
        given = [_parse_ids(h) for h in frame["history"]] if "history" in frame else None
        n_items = len(self._items)
        out = []
        with self._history_source(given is not None or not len(customers)) as source:
            for rows in _batches(len(customers), n_items):
                if given is not None:
                    history = self._given_history(given[rows])
                else:
                    history = source.rows(customers[rows], self._items)
                out.append(self._predict_block(customers[rows], history, carts[rows], segments[rows], k))
        if not out:
            return pd.DataFrame(columns=["customer_id", "rank", "product_id", "score", "reason"])
        return pd.concat(out, ignore_index=True)

    def _history_source(self, not_needed: bool):
        from contextlib import nullcontext

        if not_needed or self.memory is not None:
            return nullcontext(self.memory)
        return WarehouseHistory(self.state["meta"].get("history_table", HISTORY_TABLE))

    def _given_history(self, histories: list[list[str]]) -> sp.csr_matrix:
        import pandas as pd

        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        products = [p for h in histories for p in h]
        return _history_rows(pd.RangeIndex(len(histories)), self._items, rows, products)

    def _predict_block(self, customers, history: sp.csr_matrix, carts, segments, k: int) -> pd.DataFrame:
        import pandas as pd
        import scipy.sparse as sp

        state = self.state
        n = len(customers)
        history = sp.csr_matrix(history, dtype=np.float32)
        known = np.diff(history.indptr) > 0
        personal = _row_normalise(np.asarray((history @ state["weights"]).toarray(), dtype=np.float32))
        popular = np.vstack([self._popularity(s) for s in segments])
        popular = popular / np.maximum(popular.max(axis=1, keepdims=True), 1e-12)
        cart_idx = [self._items.get_indexer(pd.Index(c)) for c in carts]
        cart_idx = [c[c >= 0] for c in cart_idx]
        cart = np.zeros_like(personal)
        for row, items in enumerate(cart_idx):
            if len(items):
                similar = np.asarray(state["weights"][items].mean(axis=0)).ravel()
                following = state["transitions"][items[-1]].toarray().ravel()
                cart[row] = 0.5 * _row_normalise(similar[None])[0] + 0.5 * _row_normalise(following[None])[0]
        has_cart = np.array([len(c) > 0 for c in cart_idx])[:, None]
        base = np.where(known[:, None], personal, popular)
        # For a stranger the cart is all we know, so popularity only breaks ties.
        cart_weight = np.where(has_cart, np.where(known[:, None], CART_WEIGHT, 1.0), 0.0)
        cart_part = cart_weight * cart
        base_part = (1.0 - cart_weight) * base
        # Popularity breaks ties among items CF has nothing to say about.
        scores = (base_part + cart_part + 1e-3 * popular).astype(np.float32)
        seen = history
        if len(self._repurchase):
            keep = np.ones(history.shape[1], dtype=np.float32)
            keep[self._repurchase] = 0.0
            seen = sp.csr_matrix(history @ sp.diags(keep))
            seen.eliminate_zeros()
        _mask(scores, seen)
        for row, items in enumerate(cart_idx):
            scores[row, items] = -np.inf
        scores[:, self._unavailable] = -np.inf
        idx, top = top_k_from_scores(scores, k)
        rows = np.repeat(np.arange(n), k)
        flat = idx.ravel()
        valid = flat >= 0
        rows, flat, flat_scores = rows[valid], flat[valid], top.ravel()[valid]
        reason = np.where(
            cart_part[rows, flat] > base_part[rows, flat],
            REASON_CART,
            np.where(known[rows] & (base_part[rows, flat] > 0), REASON_PERSONAL, REASON_POPULAR),
        )
        return pd.DataFrame(
            {
                "customer_id": customers[rows],
                "rank": np.tile(np.arange(1, k + 1), n)[valid],
                "product_id": self._items.to_numpy()[flat],
                "score": flat_scores.astype(float),
                "reason": reason,
            }
        )

    def _popularity(self, segment) -> np.ndarray:
        globally = self.state["popularity"]
        if segment is not None and str(segment) in self._segments:
            seg = self.state["segment_popularity"][self._segments[str(segment)]]
            return seg + globally / (globally.max() + 1.0)
        return globally


def _RecommenderModel_class() -> type:
    """``RecommenderModel``: ``_RecommenderModel`` on MLflow's base class, built on first use (import cost, ml/pyfunc.py)."""
    return lazy_subclass(globals(), "RecommenderModel", _RecommenderModel, python_model)


def __getattr__(attr: str) -> type:
    if attr == "RecommenderModel":
        return _RecommenderModel_class()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def _row_normalise(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    return np.where(top > 0, scores / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


def _parse_ids(ids) -> list[str]:
    """Product ids from a list or a comma-separated string; None, NaN or '' is none."""
    if ids is None or (isinstance(ids, float) and np.isnan(ids)):
        return []
    if isinstance(ids, str):
        return [c.strip() for c in ids.split(",") if c.strip()]
    return [str(c) for c in ids]


def fit_recommender(
    interactions: pd.DataFrame,
    l2: float = DEFAULT_L2,
    neighbours: int = DEFAULT_NEIGHBOURS,
    customer_segments: Mapping | None = None,
    allow_repurchase: Iterable = (),
    unavailable: Iterable = (),
) -> _RecommenderModel:
    """Fit every part on ``customer_id, product_id[, weight][, event_time]`` rows and bundle them.

    The training histories stay in memory so ``predict`` knows these customers in this process;
    a logged and reloaded model reads them from the caller's ``history`` or the warehouse."""
    matrix = build_interaction_matrix(interactions)
    cf = ItemItemRecommender(l2=l2, neighbours=neighbours).fit(matrix.matrix)
    segments = None
    if customer_segments is not None:
        segments = [customer_segments.get(u) for u in matrix.user_ids]
    popularity = PopularityRecommender().fit(matrix.matrix, segments)
    with_time = interactions if TIME in interactions else interactions.assign(**{TIME: 0})
    transitions = TransitionModel().fit(with_time, matrix)
    return _RecommenderModel_class().from_fitted(
        matrix, cf, popularity, transitions, allow_repurchase, unavailable
    )


def log_recommender(model: _RecommenderModel, name: str = "recommender", **log_model_kwargs):
    """Log the pyfunc to the active MLflow run (item-keyed artefacts as npz/JSON, not a pickle
    of arrays; no customer id or history is written)."""
    import mlflow
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    signature = ModelSignature(
        # Served histories and carts are comma-separated product ids; lists work only in-process.
        # Without `history` the model reads the customers' histories from the warehouse.
        inputs=Schema(
            [
                ColSpec("string", "customer_id"),
                ColSpec("string", "history", required=False),
                ColSpec("string", "cart", required=False),
                ColSpec("string", "segment", required=False),
            ]
        ),
        outputs=Schema(
            [
                ColSpec("string", "customer_id"),
                ColSpec("long", "rank"),
                ColSpec("string", "product_id"),
                ColSpec("double", "score"),
                ColSpec("string", "reason"),
            ]
        ),
        params=ParamSchema([ParamSpec("k", "long", 10)]),
    )
    with tempfile.TemporaryDirectory() as tmp:
        artefacts = model.write_artefacts(tmp)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=model,
            artifacts=artefacts,
            signature=signature,
            # The example carries its own history: logging never needs the warehouse.
            input_example=pd.DataFrame({"customer_id": ["example-customer"], "history": [""], "cart": [""]}),
            pip_requirements=_requirements(),
            **log_model_kwargs,
        )


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("duckdb", "mlflow", "numpy", "pandas", "scipy")]


# ---------------------------------------------------------------- evaluation


def compare_on_split(
    train: pd.DataFrame,
    test: pd.DataFrame,
    item_ids: Sequence,
    k: int = 10,
    l2_grid: Sequence[float] = L2_GRID,
    validation_fraction: float = 0.2,
    l2_start: float | None = None,
) -> tuple[dict, InteractionMatrix, sp.csr_matrix]:
    """Tune λ on a per-user temporal holdout of ``train`` (``tune_l2``, warm-started from
    ``l2_start`` when given), refit on all of ``train``, and score platform CF and popularity on
    ``test`` (train items excluded).

    Only users with training history and at least one test item are scored. Returns the
    metrics, the training matrix and the aligned test matrix.
    """
    from time import perf_counter

    import pandas as pd

    from ml.recommendations.ranking import ranking_metrics

    user_ids = np.sort(pd.unique(train[USER]))
    fit_part, valid_part = holdout_last_per_user(train, validation_fraction)
    fit_matrix = build_interaction_matrix(fit_part, user_ids, item_ids).matrix
    valid_matrix = build_interaction_matrix(valid_part, user_ids, item_ids).matrix
    l2, searched = tune_l2(fit_matrix, valid_matrix, l2_grid, k, start=l2_start)
    del fit_matrix, valid_matrix

    train_matrix = build_interaction_matrix(train, user_ids, item_ids)
    test_matrix = build_interaction_matrix(test, user_ids, item_ids).matrix
    users = np.flatnonzero(np.diff(test_matrix.indptr) > 0)
    relevant = test_matrix[users]

    results = {}
    start = perf_counter()
    cf = ItemItemRecommender(l2=l2).fit(train_matrix.matrix)
    fitted = perf_counter()
    top, _ = cf.recommend(users, k, exclude=train_matrix.matrix)
    results["platform"] = {
        **ranking_metrics(top, relevant),
        "fit_seconds": fitted - start,
        "recommend_seconds": perf_counter() - fitted,
        "l2": l2,
        "neighbours": cf.neighbours,
        "l2_validation_ndcg": {str(v): round(float(n), 5) for v, n in sorted(searched.items())},
    }
    del cf
    start = perf_counter()
    popularity = PopularityRecommender().fit(train_matrix.matrix)
    fitted = perf_counter()
    top, _ = popularity.recommend(users, k, exclude=train_matrix.matrix)
    results["popularity"] = {
        **ranking_metrics(top, relevant),
        "fit_seconds": fitted - start,
        "recommend_seconds": perf_counter() - fitted,
    }
    return results, train_matrix, test_matrix


def evaluate_temporal(
    interactions: pd.DataFrame,
    cutoff,
    k: int = 10,
    test_event_type: str | None = "purchase",
    l2_start: float | None = None,
) -> dict:
    """Train on interactions before ``cutoff``, evaluate on what customers bought after.

    ``interactions`` has ``customer_id, product_id[, weight], event_time`` and optionally
    ``event_type``; when it does, only ``test_event_type`` rows count as test truth. The
    catalogue is every product seen in either period. Customers with no history before the
    cutoff are cold starts the CF model cannot rank; they are counted, not scored. ``l2_start``
    warm-starts the λ search (``tune_l2``).
    """
    import pandas as pd

    times = pd.to_datetime(interactions[TIME])
    cutoff = pd.Timestamp(cutoff)
    train = interactions[times < cutoff]
    test = interactions[times >= cutoff]
    if test_event_type is not None and "event_type" in interactions:
        test = test[test["event_type"] == test_event_type]
    if train.empty or test.empty:
        raise ValueError(f"cutoff {cutoff} leaves {len(train)} training and {len(test)} test rows")
    item_ids = np.sort(pd.unique(interactions[ITEM]))
    results, _, _ = compare_on_split(train, test, item_ids, k, l2_start=l2_start)
    test_users = pd.unique(test[USER])
    results["users"] = {
        "evaluated": results["platform"]["users_scored"],
        "cold_start": int((~pd.Index(test_users).isin(pd.unique(train[USER]))).sum()),
    }
    return results
