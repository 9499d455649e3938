import numpy as np
import pytest

from ml.recommendations.movielens import (
    MOVIELENS_100K,
    evaluate_movielens,
    load_movielens_100k,
    split_movielens,
)

pytestmark = pytest.mark.skipif(
    not (MOVIELENS_100K / "u.data").exists(),
    reason=f"MovieLens 100k not at {MOVIELENS_100K} (GroupLens licence: not in the repo; set C360_MOVIELENS_100K)",
)


@pytest.fixture(scope="module")
def results():
    return evaluate_movielens(k=10)


def test_loader_reads_every_rating_as_an_interaction():
    ratings = load_movielens_100k()
    assert len(ratings) == 100_000
    assert ratings["customer_id"].nunique() == 943 and ratings["product_id"].nunique() == 1682


def test_split_holds_out_each_users_latest_fifth_and_leaks_nothing():
    ratings = load_movielens_100k()
    train, test = split_movielens(ratings)
    assert len(train) + len(test) == len(ratings)
    pairs = lambda frame: set(zip(frame["customer_id"], frame["product_id"]))
    assert not pairs(train) & pairs(test)
    last_train = train.groupby("customer_id")["event_time"].max()
    first_test = test.groupby("customer_id")["event_time"].min()
    assert (last_train.loc[first_test.index] <= first_test).all()
    share = test.groupby("customer_id").size() / ratings.groupby("customer_id").size()
    assert share.between(0.1, 0.2 + 1e-9).all()  # every user has >= 20 ratings


def test_results_report_five_metrics_for_each_model(results):
    assert set(results) == {"platform", "popularity", "reference_als"}
    for metrics in results.values():
        assert {"ndcg@10", "precision@10", "recall@10", "map@10", "coverage", "fit_seconds"} <= set(metrics)
        assert metrics["users_scored"] == 943
        assert all(
            0 <= metrics[key] <= 1 for key in ("ndcg@10", "precision@10", "recall@10", "map@10", "coverage")
        )


def test_platform_beats_default_als_and_one_and_a_half_times_popularity(results):
    platform = results["platform"]["ndcg@10"]
    assert platform >= results["reference_als"]["ndcg@10"]
    assert platform >= 1.5 * results["popularity"]["ndcg@10"]


def test_tuned_l2_comes_from_the_grid(results):
    assert results["platform"]["l2"] in {50.0, 100.0, 200.0, 300.0, 500.0, 1000.0}
    assert np.isfinite(results["platform"]["fit_seconds"])
