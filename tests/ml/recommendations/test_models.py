import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ml.recommendations.models import (
    HISTORY_TABLE,
    REASON_CART,
    REASON_PERSONAL,
    REASON_POPULAR,
    HistoryUnavailable,
    ItemItemRecommender,
    PopularityRecommender,
    RecommenderModel,
    TransitionModel,
    build_interaction_matrix,
    ease_weights,
    evaluate_temporal,
    fit_recommender,
    holdout_last_per_user,
    log_recommender,
    top_k_from_scores,
    tune_l2,
)
from ml.recommendations.ranking import recall_against


def planted_interactions(n_customers=300, seed=0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three taste groups of ten products each; every customer buys 6 of their group's
    products plus one random product. Returns the interactions and each customer's
    unbought in-group products (the planted preferences)."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    start = pd.Timestamp("2025-01-01")
    for c in range(n_customers):
        group = c % 3
        own = [f"P{group * 10 + i:02d}" for i in range(10)]
        bought = list(rng.choice(own, 6, replace=False)) + [f"P{rng.integers(30):02d}"]
        for day, product in enumerate(bought):
            rows.append((f"C{c:04d}", product, 1.0, start + pd.Timedelta(days=day + c % 7)))
        truth += [(f"C{c:04d}", p) for p in own if p not in bought]
    frame = pd.DataFrame(rows, columns=["customer_id", "product_id", "weight", "event_time"])
    return frame, pd.DataFrame(truth, columns=["customer_id", "product_id"])


def test_interaction_matrix_sums_repeat_weights_and_maps_ids():
    frame = pd.DataFrame(
        {"customer_id": ["b", "a", "b"], "product_id": ["x", "y", "x"], "weight": [1.0, 2.0, 3.0]}
    )
    m = build_interaction_matrix(frame)
    assert list(m.user_ids) == ["a", "b"] and list(m.item_ids) == ["x", "y"]
    assert m.matrix.toarray().tolist() == [[0, 2], [4, 0]]
    assert m.user_indices(["b", "zz"]).tolist() == [1, -1]


def test_interaction_matrix_with_given_ids_drops_unknown_rows():
    frame = pd.DataFrame({"customer_id": ["a", "new"], "product_id": ["x", "x"]})
    m = build_interaction_matrix(frame, user_ids=["a"], item_ids=["x", "y"])
    assert m.matrix.shape == (1, 2) and m.matrix.toarray().tolist() == [[1, 0]]


def test_holdout_keeps_each_users_last_fifth_by_time():
    frame = pd.DataFrame(
        {
            "customer_id": ["a"] * 5 + ["b"],
            "product_id": [5, 4, 3, 2, 1, 9],
            "event_time": pd.to_datetime(
                ["2025-01-05", "2025-01-04", "2025-01-03", "2025-01-02", "2025-01-01", "2025-01-01"]
            ),
        }
    )
    train, test = holdout_last_per_user(frame, 0.2)
    assert test["product_id"].tolist() == [5]
    assert sorted(train["product_id"]) == [1, 2, 3, 4, 9]  # b's only interaction stays in train


def test_top_k_pads_with_minus_one_when_candidates_run_out():
    scores = np.array([[0.1, -np.inf, 0.5], [-np.inf, -np.inf, -np.inf]], dtype=np.float32)
    idx, top = top_k_from_scores(scores, 4)
    assert idx.tolist() == [[2, 0, -1, -1], [-1, -1, -1, -1]]
    assert top[0, 0] == pytest.approx(0.5) and np.isneginf(top[0, 2])


def test_ease_weights_match_closed_form():
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1], [1, 0, 0]], dtype=float))
    p = np.linalg.inv((x.T @ x).toarray() + 2.0 * np.eye(3))
    expected = np.eye(3) - p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(ease_weights(x, 2.0, dtype=np.float64), expected, atol=1e-10)
    # The float32 solve (the default) agrees to float32 precision.
    single = ease_weights(x, 2.0)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, expected, atol=1e-6)


def test_float32_ease_keeps_float64_neighbours_and_rankings():
    frame, _ = planted_interactions()
    m = build_interaction_matrix(frame).matrix
    double = ease_weights(m, 10.0, dtype=np.float64)
    single = ease_weights(m, 10.0)
    np.testing.assert_allclose(single, double, atol=1e-5 * np.abs(double).max())
    # The same top-10 items per customer from either solve.
    users = np.arange(m.shape[0])
    scores = [np.asarray(_binary_dense(m) @ w) for w in (double, single)]
    for s in scores:
        s[m.toarray() > 0] = -np.inf
    assert (top_k_from_scores(scores[0], 10)[0] == top_k_from_scores(scores[1], 10)[0]).mean() > 0.99
    assert len(users) == m.shape[0]


def _binary_dense(matrix) -> np.ndarray:
    return (matrix.toarray() > 0).astype(np.float64)


@pytest.mark.parametrize("max_ease_items", [10_000, 0], ids=["ease", "bm25_knn_fallback"])
def test_cf_recommends_unbought_products_of_the_customers_taste_group(max_ease_items):
    frame, truth = planted_interactions()
    m = build_interaction_matrix(frame)
    model = ItemItemRecommender(l2=10.0, max_ease_items=max_ease_items).fit(m.matrix)
    assert model.method_ == ("ease" if max_ease_items else "bm25_knn")
    users = np.arange(m.matrix.shape[0])
    idx, _ = model.recommend(users, k=3, exclude=m.matrix)
    assert not m.matrix[users[:, None], idx].toarray().any()  # nothing already bought
    recs = pd.DataFrame(
        {
            "customer_id": np.repeat(m.user_ids, 3),
            "rank": np.tile([1, 2, 3], len(users)),
            "product_id": m.item_ids[idx.ravel()],
        }
    )
    assert recall_against(truth, recs, k=3) > 0.7


def test_similar_items_stay_in_group_and_never_return_the_item_itself():
    frame, _ = planted_interactions()
    m = build_interaction_matrix(frame)
    model = ItemItemRecommender(l2=10.0).fit(m.matrix)
    p00 = m.item_indices(["P00"])
    idx, scores = model.similar_items(p00, k=5)
    similar = m.item_ids[idx[0]]
    assert "P00" not in similar and all(p < "P10" for p in similar)
    assert (scores > 0).all()


def test_popularity_ranks_by_distinct_buyers_and_by_segment():
    matrix = sp.csr_matrix(np.array([[5, 0, 1], [1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=float))
    pop = PopularityRecommender().fit(matrix, user_segments=["s", "s", "t", "t"])
    idx, _ = pop.recommend(np.array([0, 1]), k=3)
    assert idx[0].tolist() == [2, 0, 1]  # 3 buyers beat one customer's 5 units
    idx, _ = pop.recommend(np.array([0, 1]), k=2, segments=["t", "unknown"])
    assert idx[0].tolist() == [2, 1] and idx[1].tolist() == [2, 0]
    idx, _ = pop.recommend(np.array([0]), k=3, exclude=matrix)
    assert idx.tolist() == [[1, -1, -1]]


def test_transitions_predict_what_usually_comes_next():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b", "b", "c", "c"],
            "product_id": ["x", "y", "z", "x", "x", "y", "x", "z"],
            "event_time": pd.to_datetime(
                ["2025-01-01", "2025-01-02", "2025-01-03"] * 2 + ["2025-01-01", "2025-01-02"]
            ),
        }
    )
    m = build_interaction_matrix(frame)
    transitions = TransitionModel().fit(frame, m)
    idx, probs = transitions.next_items(m.item_indices(["x", "z"]), k=2)
    assert m.item_ids[idx[0]].tolist() == ["y", "z"]
    np.testing.assert_allclose(probs[0], [2 / 3, 1 / 3], rtol=1e-6)
    assert idx[1].tolist() == [-1, -1]  # nothing ever followed z


def test_tune_l2_picks_the_best_validation_value_from_the_grid():
    frame, _ = planted_interactions()
    train, valid = holdout_last_per_user(frame, 0.3)
    users, items = sorted(frame["customer_id"].unique()), sorted(frame["product_id"].unique())
    fit = build_interaction_matrix(train, users, items).matrix
    val = build_interaction_matrix(valid, users, items).matrix
    best, table = tune_l2(fit, val, grid=(1.0, 10.0, 1e6))
    assert set(table) == {1.0, 10.0, 1e6} and table[best] == max(table.values())


def test_tune_l2_warm_start_fits_fewer_and_finds_the_full_grids_choice():
    frame, _ = planted_interactions()
    train, valid = holdout_last_per_user(frame, 0.3)
    users, items = sorted(frame["customer_id"].unique()), sorted(frame["product_id"].unique())
    fit = build_interaction_matrix(train, users, items).matrix
    val = build_interaction_matrix(valid, users, items).matrix
    grid = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)
    best, table = tune_l2(fit, val, grid=grid, coarse=False)
    assert set(table) == set(grid)
    # Without a start the search fits every other λ, then climbs to the full grid's choice.
    coarse, tried = tune_l2(fit, val, grid=grid)
    assert coarse == best and {1.0, 100.0, 1e4, 1e6} <= set(tried) and len(tried) < len(grid)
    assert all(tried[v] == pytest.approx(table[v]) for v in tried)
    # From above the best λ the search walks down to the full grid's choice (validation NDCG is
    # not unimodal at the small end here, so a start there may stay in a local maximum).
    for start in (grid[-1], 1e5):
        warm, tried = tune_l2(fit, val, grid=grid, start=start)
        assert warm == best and start in tried and len(tried) <= len(grid)
        assert all(tried[v] == pytest.approx(table[v]) for v in tried)
    # From the best λ itself only it and its two neighbours are fitted.
    warm, tried = tune_l2(fit, val, grid=grid, start=best)
    assert warm == best and len(tried) <= 3
    # A start outside the grid is tried too.
    warm, tried = tune_l2(fit, val, grid=grid, start=42.0)
    assert 42.0 in tried and tried[warm] == max(tried.values())


def test_tune_l2_scores_a_fixed_sample_of_validation_customers():
    frame, _ = planted_interactions()
    train, valid = holdout_last_per_user(frame, 0.3)
    users, items = sorted(frame["customer_id"].unique()), sorted(frame["product_id"].unique())
    fit = build_interaction_matrix(train, users, items).matrix
    val = build_interaction_matrix(valid, users, items).matrix
    grid = (1.0, 10.0, 1e6)
    _, everyone = tune_l2(fit, val, grid=grid, coarse=False, max_users=None)
    _, enough = tune_l2(fit, val, grid=grid, coarse=False, max_users=len(users))
    assert enough == everyone
    _, sampled = tune_l2(fit, val, grid=grid, coarse=False, max_users=5)
    _, again = tune_l2(fit, val, grid=grid, coarse=False, max_users=5)
    assert sampled == again and sampled != everyone


@pytest.fixture(scope="module")
def served():
    frame, truth = planted_interactions()
    segments = {f"C{c:04d}": "vip" if c < 30 else "regular" for c in range(300)}
    model = fit_recommender(frame, l2=10.0, customer_segments=segments, allow_repurchase=["P29"])
    return model, frame, truth


def test_known_customers_get_personal_recommendations_excluding_purchases(served):
    model, frame, truth = served
    out = model.predict(None, pd.DataFrame({"customer_id": ["C0000", "C0001"]}), params={"k": 4})
    assert list(out.columns) == ["customer_id", "rank", "product_id", "score", "reason"]
    assert out.groupby("customer_id")["rank"].apply(list).tolist() == [[1, 2, 3, 4]] * 2
    bought = set(zip(frame["customer_id"], frame["product_id"]))
    assert not any((c, p) in bought for c, p in zip(out["customer_id"], out["product_id"]))
    assert (out["reason"] == REASON_PERSONAL).all()
    assert recall_against(truth[truth["customer_id"].isin(["C0000", "C0001"])], out, k=4) == 1.0


def test_allow_repurchase_lets_bought_consumables_come_back(served):
    model, frame, _ = served
    buyers = frame.loc[frame["product_id"] == "P29", "customer_id"].unique()
    out = model.predict(None, pd.DataFrame({"customer_id": buyers}), params={"k": 10})
    assert "P29" in set(out["product_id"])


def test_unknown_customers_get_popular_items_by_segment(served):
    model, frame, _ = served
    out = model.predict(
        None, pd.DataFrame({"customer_id": ["nobody", "nobody2"], "segment": [None, "vip"]}), params={"k": 3}
    )
    assert (out["reason"] == REASON_POPULAR).all()
    top = frame.groupby("product_id")["customer_id"].nunique().sort_values(ascending=False, kind="stable")
    assert out.loc[out["customer_id"] == "nobody", "product_id"].iloc[0] == top.index[0]


def test_cart_blends_in_similar_and_next_items_as_list_or_string(served):
    model, _, _ = served
    as_list = model.predict(None, pd.DataFrame({"customer_id": ["new"], "cart": [["P10", "P11"]]}))
    as_text = model.predict(None, pd.DataFrame({"customer_id": ["new"], "cart": ["P10, P11"]}))
    pd.testing.assert_frame_equal(as_list, as_text)
    assert not {"P10", "P11"} & set(as_list["product_id"])
    assert (as_list["reason"].head(3) == REASON_CART).all()
    assert as_list["product_id"].head(3).between("P10", "P19").all()


def _history_of(frame: pd.DataFrame, customer: str) -> str:
    return ",".join(sorted(set(frame.loc[frame["customer_id"] == customer, "product_id"])))


def test_logged_model_loads_in_a_fresh_process(served, tmp_path):
    model, frame, _ = served
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("recs")
    with mlflow.start_run():
        info = log_recommender(model, name="recommender")
    assert not (tmp_path / "model.pkl").exists()
    missing = tmp_path / "no-such-warehouse.duckdb"
    script = f"""
import json, mlflow, pandas as pd
from ml.recommendations.models import HistoryUnavailable
mlflow.set_tracking_uri("sqlite:///{tmp_path / "mlflow.db"}")
m = mlflow.pyfunc.load_model("{info.model_uri}")
frame = pd.DataFrame({{"customer_id": ["C0000", "stranger"], "history": ["{_history_of(frame, "C0000")}", ""]}})
out = m.predict(frame, params={{"k": 3}})
cart = m.predict(pd.DataFrame({{"customer_id": ["stranger"], "history": [""], "cart": ["P10,P11"], "segment": ["vip"]}}))
assert (cart["reason"].head(3) == "cart").all(), cart
try:  # no history given and no warehouse: a clear error, not popularity for everyone
    m.predict(pd.DataFrame({{"customer_id": ["C0000"]}}))
    raise SystemExit("served without any history")
except HistoryUnavailable as exc:
    assert "{missing}" in str(exc) and "`history`" in str(exc), exc
print(json.dumps(out.to_dict(orient="list")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "C360_WAREHOUSE": str(missing)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = pd.DataFrame(json.loads(done.stdout.strip().splitlines()[-1]))
    in_process = model.predict(None, pd.DataFrame({"customer_id": ["C0000", "stranger"]}), params={"k": 3})
    assert out["product_id"].tolist() == in_process["product_id"].tolist()
    assert out["reason"].tolist() == [REASON_PERSONAL] * 3 + [REASON_POPULAR] * 3


def test_artefacts_hold_no_customer_id_or_history(served, tmp_path):
    model, frame, _ = served
    paths = model.write_artefacts(tmp_path / "artefacts")
    assert set(paths) == {"weights", "transitions", "popularity", "meta"}
    customers = set(frame["customer_id"])
    for path in (tmp_path / "artefacts").iterdir():
        data = path.read_bytes()
        assert not [c for c in customers if c.encode() in data], path.name
    meta = json.loads((tmp_path / "artefacts" / "meta.json").read_text())
    assert "user_ids" not in meta and set(meta["item_ids"]) == set(frame["product_id"])


def test_history_given_by_the_caller_replaces_the_lookup(served):
    model, frame, _ = served
    remembered = model.predict(None, pd.DataFrame({"customer_id": ["C0000"]}), params={"k": 4})
    as_text = model.predict(
        None,
        pd.DataFrame({"customer_id": ["C0000"], "history": [_history_of(frame, "C0000")]}),
        params={"k": 4},
    )
    as_list = model.predict(
        None,
        pd.DataFrame({"customer_id": ["C0000"], "history": [_history_of(frame, "C0000").split(",")]}),
        params={"k": 4},
    )
    pd.testing.assert_frame_equal(remembered, as_text)
    pd.testing.assert_frame_equal(remembered, as_list)
    # A known customer with an empty given history is a stranger: the caller's history wins.
    forgotten = model.predict(
        None, pd.DataFrame({"customer_id": ["C0000"], "history": [""]}), params={"k": 4}
    )
    assert (forgotten["reason"] == REASON_POPULAR).all()


def test_a_loaded_model_reads_histories_from_the_warehouse_and_forgets_erased_customers(
    served, tmp_path, monkeypatch
):
    import duckdb

    model, frame, _ = served
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema intermediate")
        con.register("planted", frame)
        con.execute(
            f"create table {HISTORY_TABLE} as select customer_id, product_id, sum(weight) as weight "
            "from planted group by all"
        )
    monkeypatch.setenv("C360_WAREHOUSE", str(warehouse))
    loaded = RecommenderModel()
    loaded.state, loaded.memory = model.state, None  # what load_context leaves: no histories
    loaded._index()
    asked = pd.DataFrame({"customer_id": ["C0000", "C0001", "stranger"]})
    pd.testing.assert_frame_equal(
        loaded.predict(None, asked, params={"k": 4}), model.predict(None, asked, params={"k": 4})
    )
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"delete from {HISTORY_TABLE} where customer_id = 'C0000'")
    after = loaded.predict(None, asked, params={"k": 4})
    assert (after.loc[after["customer_id"] == "C0000", "reason"] == REASON_POPULAR).all()
    assert (after.loc[after["customer_id"] == "C0001", "reason"] == REASON_PERSONAL).all()

    monkeypatch.setenv("C360_WAREHOUSE", str(tmp_path / "gone.duckdb"))
    with pytest.raises(HistoryUnavailable, match="gone.duckdb"):
        loaded.predict(None, asked)


def test_temporal_evaluation_beats_popularity_on_planted_tastes():
    frame, _ = planted_interactions(n_customers=600)
    frame["event_type"] = "purchase"
    cutoff = frame["event_time"].quantile(0.75)
    result = evaluate_temporal(frame, cutoff, k=5)
    assert result["platform"]["ndcg@5"] > result["popularity"]["ndcg@5"]
    assert result["users"]["evaluated"] > 0
