import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.recommendations.ranking import (
    catalogue_coverage,
    hits_matrix,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_against,
    recall_at_k,
)

# user 0 likes {1, 3}, user 1 likes {0}, user 2 has no held-out item (not scored).
RELEVANT = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]))
TOP_K = np.array([[0, 1, 2], [2, -1, 0], [0, 1, 2]])
LOG3 = np.log2(3)


def test_hits_mark_relevant_slots_and_never_empty_ones():
    assert hits_matrix(TOP_K, RELEVANT).tolist() == [
        [False, True, False],
        [False, False, True],
        [False, False, False],
    ]


def test_precision_counts_empty_slots_as_misses_and_skips_users_without_truth():
    assert precision_at_k(TOP_K, RELEVANT) == pytest.approx(1 / 3)


def test_recall_divides_by_all_relevant_items():
    assert recall_at_k(TOP_K, RELEVANT) == pytest.approx((1 / 2 + 1) / 2)


def test_ndcg_uses_log2_discount_and_ideal_over_min_k_relevant():
    user0 = (1 / LOG3) / (1 + 1 / LOG3)
    user1 = (1 / 2) / 1
    assert ndcg_at_k(TOP_K, RELEVANT) == pytest.approx((user0 + user1) / 2)


def test_map_normalises_by_min_k_relevant():
    user0 = (1 / 2) / 2
    user1 = (1 / 3) / 1
    assert map_at_k(TOP_K, RELEVANT) == pytest.approx((user0 + user1) / 2)


def test_perfect_ranking_scores_one():
    top = np.array([[1, 3, 0], [0, 2, 4]])
    relevant = RELEVANT[:2]
    assert ndcg_at_k(top, relevant) == pytest.approx(1.0)
    assert map_at_k(top, relevant) == pytest.approx(1.0)
    assert recall_at_k(top, relevant) == pytest.approx(1.0)


def test_coverage_is_share_of_catalogue_shown_to_anyone():
    assert catalogue_coverage(TOP_K, 5) == pytest.approx(3 / 5)


def test_ranking_metrics_names_keys_by_k():
    metrics = ranking_metrics(TOP_K, RELEVANT)
    assert set(metrics) == {"ndcg@3", "precision@3", "recall@3", "map@3", "coverage", "users_scored"}
    assert metrics["users_scored"] == 2


def test_mismatched_rows_are_rejected():
    with pytest.raises(ValueError, match="expected \\(3, k\\)"):
        hits_matrix(TOP_K[:2], RELEVANT)


def test_recall_against_counts_customers_without_recommendations_as_zero():
    truth = pd.DataFrame({"customer_id": ["a", "a", "b"], "product_id": ["x", "y", "z"]})
    recs = pd.DataFrame({"customer_id": ["a", "a", "a"], "rank": [1, 2, 3], "product_id": ["x", "q", "y"]})
    assert recall_against(truth, recs, k=2) == pytest.approx((1 / 2 + 0) / 2)
    assert recall_against(truth, recs, k=3) == pytest.approx((1 + 0) / 2)
