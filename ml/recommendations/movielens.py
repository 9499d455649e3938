"""MovieLens 100k as an implicit-feedback benchmark for the recommender.

Every rating counts as one interaction. The split is temporal per user: each user's last
20% of ratings by time (``holdout_last_per_user``) is the test set, so no model sees a
user's future; EASE's λ is tuned on the last 20% of each user's *training* ratings. The
data is read from the shared data folder, never copied into the repository (GroupLens
does not allow redistribution).
"""

from __future__ import annotations

import os
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

import numpy as np

from c360.settings import PROJECT_ROOT
from ml.recommendations.models import ITEM, TIME, USER, WEIGHT, compare_on_split, holdout_last_per_user
from ml.recommendations.ranking import ranking_metrics

if TYPE_CHECKING:
    import pandas as pd

# The team's shared data folder beside the checkout (../shared/data, as for Olist: the licences keep
# the files out of the repository), wherever the checkout is; ``C360_MOVIELENS_100K`` overrides it.
MOVIELENS_100K = Path(
    os.environ.get("C360_MOVIELENS_100K", PROJECT_ROOT.parent / "shared" / "data" / "movielens_100k")
)
TEST_FRACTION = 0.2


def load_movielens_100k(path: str | Path = MOVIELENS_100K) -> pd.DataFrame:
    """``u.data`` as ``customer_id, product_id, weight (=1), event_time, rating``."""
    import pandas as pd

    data = Path(path) / "u.data"
    if not data.exists():
        raise FileNotFoundError(f"MovieLens 100k not found: {data} (download it from GroupLens)")
    ratings = pd.read_csv(data, sep="\t", names=[USER, ITEM, "rating", "unix_ts"])
    return pd.DataFrame(
        {
            USER: ratings[USER],
            ITEM: ratings[ITEM],
            WEIGHT: np.float32(1.0),
            TIME: pd.to_datetime(ratings["unix_ts"], unit="s"),
            "rating": ratings["rating"],
        }
    )


def split_movielens(
    ratings: pd.DataFrame, fraction: float = TEST_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user temporal split: each user's last ``fraction`` of ratings are the test set."""
    return holdout_last_per_user(ratings, fraction)


def evaluate_movielens(k: int = 10, path: str | Path = MOVIELENS_100K, als_threads: int = 1) -> dict:
    """Platform CF vs popularity vs implicit's default ALS on the temporal split.

    Returns ``{"platform", "popularity", "reference_als"}``, each with ``ndcg@k,
    precision@k, recall@k, map@k, coverage``, ``users_scored`` and timings; the platform
    entry also carries its tuned ``l2`` and ``neighbours``.
    """
    ratings = load_movielens_100k(path)
    train, test = split_movielens(ratings)
    catalogue = np.sort(ratings[ITEM].unique())
    results, train_matrix, test_matrix = compare_on_split(train, test, catalogue, k)
    users = np.flatnonzero(np.diff(test_matrix.indptr) > 0)
    results["reference_als"] = reference_als(train_matrix.matrix, test_matrix, users, k, als_threads)
    return results


def reference_als(train_matrix, test_matrix, users: np.ndarray, k: int, threads: int = 1) -> dict:
    """implicit's ``AlternatingLeastSquares()`` with default hyperparameters. Only the
    thread count and seed are set, for a shared machine and a reproducible number."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    train_matrix = train_matrix.tocsr().astype(np.float32)
    with threadpool_limits(1, "blas"):  # implicit warns and slows down with threaded BLAS
        model = AlternatingLeastSquares(num_threads=threads, random_state=0)
        start = perf_counter()
        model.fit(train_matrix, show_progress=False)
        fitted = perf_counter()
        top, _ = model.recommend(users, train_matrix[users], N=k, filter_already_liked_items=True)
    return {
        **ranking_metrics(np.asarray(top), test_matrix[users]),
        "fit_seconds": fitted - start,
        "recommend_seconds": perf_counter() - fitted,
    }


if __name__ == "__main__":
    for name, metrics in evaluate_movielens().items():
        print(name, {key: round(value, 4) for key, value in metrics.items()})
