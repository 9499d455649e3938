import contextlib
import io
import itertools
import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from ml import churn, plots, registry
from ml.metrics import expected_calibration_error

AS_OF_DATES = ["2024-01-01", "2024-04-01", "2024-07-01"]


@contextlib.contextmanager
def isolated_mlflow_state():
    """Put MLflow's process-wide URIs and active experiment back for the other test modules."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow.tracking import fluent

    env = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id = saved
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            del os.environ[key]
        os.environ.update(env)


@pytest.fixture(autouse=True, scope="module")
def one_openmp_thread():
    # HistGradientBoosting's OpenMP threads slow to a crawl when CI cores are shared.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def synthetic_feature_table(n_customers: int, as_of_dates=AS_OF_DATES, seed: int = 0) -> pd.DataFrame:
    """Feature table shaped like the SQL one, churn drawn from a known nonlinear logistic link."""
    rng = np.random.default_rng(seed)
    frames = []
    for as_of in as_of_dates:
        n = n_customers
        f = {
            "recency_days": rng.exponential(80, n),
            "frequency_90d": rng.poisson(1.5, n),
            "frequency_365d": rng.poisson(6, n),
            "monetary_90d": rng.gamma(2, 40, n),
            "monetary_365d": rng.gamma(2, 150, n),
            "frequency_trend": rng.integers(-4, 5, n),
            "spend_trend": rng.normal(0, 80, n),
            "visits_30d": rng.poisson(3, n),
            "visits_90d": rng.poisson(9, n),
            "visit_trend": rng.integers(-6, 7, n),
            "cart_abandon_rate_90d": rng.uniform(0, 1, n),
            "tickets_180d": rng.poisson(0.4, n),
            "complaints_180d": rng.poisson(0.15, n),
            "avg_review_score": rng.uniform(1, 5, n),
            "review_sentiment": rng.uniform(-1, 1, n),
            "tenure_days": rng.uniform(10, 2000, n),
            "store_share": rng.uniform(0, 1, n),
            "app_share": rng.uniform(0, 1, n),
            "promo_share": rng.uniform(0, 1, n),
            "days_since_last_visit": rng.exponential(30, n),
            "avg_order_value": rng.gamma(3, 20, n),
            "frequency_all": rng.poisson(10, n),
            "order_rate": rng.gamma(2, 0.01, n),
            "first_purchase_days": rng.uniform(10, 700, n),
            "frequency_180d": rng.poisson(3, n),
            "frequency_same_window_last_year": rng.poisson(1.5, n),
            "sale_orders_all": rng.poisson(1, n),
            "visits_365d": rng.poisson(30, n),
            "visits_prev_90d": rng.poisson(9, n),
            "complaints_refunds_90d": rng.poisson(0.1, n),
            "days_since_last_ticket_180d": rng.uniform(0, 180, n),
            "reviews_120d": rng.poisson(0.3, n),
            "avg_review_score_120d": rng.uniform(1, 5, n),
        }
        df = pd.DataFrame(f)
        # Thresholds, an interaction and a U-shape: easy for trees, hard for a linear model.
        logit = (
            -1.6
            + 2.5 * (df.recency_days > 120)
            - 1.8 * ((df.frequency_90d >= 2) & (df.visits_30d >= 3))
            + 1.2 * (df.complaints_180d > 0)
            + 1.5 * ((df.tenure_days < 200) | (df.tenure_days > 1700))
            - 1.0 * np.tanh(df.spend_trend / 60)
            + 1.0 * (df.cart_abandon_rate_90d > 0.8)
        )
        df["churned"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
        # Customers without reviews or sessions have NaN there, as in the SQL.
        df.loc[rng.uniform(size=n) < 0.3, ["avg_review_score", "review_sentiment"]] = np.nan
        df.loc[rng.uniform(size=n) < 0.1, "days_since_last_visit"] = np.nan
        df.insert(0, "as_of_date", pd.Timestamp(as_of))
        df.insert(0, "customer_id", [f"c{i:06d}" for i in range(n)])
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def feature_table() -> pd.DataFrame:
    return synthetic_feature_table(4_000)


@pytest.fixture(scope="module")
def trained(feature_table):
    train, valid = churn.time_split(feature_table, "2024-04-01", "2024-07-01")
    return train, valid, churn.train_and_evaluate(train, valid)


def test_every_feature_is_documented_once():
    assert churn.FEATURES == list(churn.FEATURE_DESCRIPTIONS)
    assert len(churn.FEATURES) == len(set(churn.FEATURES)) == 33
    assert all(churn.FEATURE_DESCRIPTIONS[f] for f in churn.FEATURES)
    assert churn.HORIZON_DAYS == 90


@pytest.mark.parametrize("kind", churn.KINDS)
@pytest.mark.parametrize("calibrate", [True, False])
def test_estimator_is_an_unfitted_pipeline_that_tolerates_missing_values(kind, calibrate):
    model = churn.estimator(kind, calibrate=calibrate)
    assert isinstance(model, Pipeline) and is_classifier(model)
    assert not hasattr(model, "classes_")
    df = synthetic_feature_table(300, ["2024-01-01"], seed=1)
    df.loc[:10, churn.FEATURES] = np.nan
    p = churn.predict_churn(model.fit(churn.feature_matrix(df), churn.labels(df)), df)
    assert p.shape == (300,) and np.all((p >= 0) & (p <= 1))


def test_estimator_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown estimator kind 'xgb'"):
        churn.estimator("xgb")


def test_feature_matrix_names_the_missing_columns():
    with pytest.raises(ValueError, match=r"lacks columns \['recency_days'\]"):
        churn.feature_matrix(pd.DataFrame({f: [1.0] for f in churn.FEATURES[1:]}))


def test_time_split_trains_on_earlier_snapshots_and_validates_on_the_later_one(feature_table):
    train, valid = churn.time_split(feature_table, "2024-04-01", "2024-07-01")
    assert sorted(train.as_of_date.dt.strftime("%Y-%m-%d").unique()) == ["2024-01-01", "2024-04-01"]
    assert set(valid.as_of_date) == {pd.Timestamp("2024-07-01")}
    assert len(train) + len(valid) == len(feature_table)


def test_cap_rows_keeps_small_tables_and_samples_large_ones_in_order(feature_table):
    assert churn.cap_rows(feature_table, None) is feature_table
    assert churn.cap_rows(feature_table, len(feature_table)) is feature_table
    n = len(feature_table) // 3
    capped = churn.cap_rows(feature_table, n, random_state=1)
    assert len(capped) == n
    # A sample of the rows, not a prefix, kept in the table's order.
    merged = capped.merge(feature_table.reset_index(), on=list(feature_table.columns), how="left")
    assert merged["index"].is_monotonic_increasing and merged["index"].notna().all()
    assert merged["index"].max() > n
    assert set(capped.as_of_date) == set(feature_table.as_of_date)
    with pytest.raises(ValueError, match="max_rows must be positive"):
        churn.cap_rows(feature_table, 0)


def test_time_split_refuses_training_labels_that_overlap_validation(feature_table):
    with pytest.raises(ValueError) as error:
        churn.time_split(feature_table, "2024-04-01", "2024-07-01", horizon_days=120)
    assert str(error.value) == (
        "training labels overlap validation: rows as of 2024-04-01 are labelled with orders up to "
        "2024-07-30, after the validation as-of date 2024-07-01; move train_cutoff to 2024-03-03 or earlier"
    )


def test_time_split_refuses_an_empty_side(feature_table):
    with pytest.raises(ValueError, match="no validation rows with as_of_date == 2024-10-01"):
        churn.time_split(feature_table, "2024-04-01", "2024-10-01")
    with pytest.raises(ValueError, match="no training rows with as_of_date <= 2023-01-01"):
        churn.time_split(feature_table, "2023-01-01", "2024-07-01")


def test_boosting_beats_or_equals_logistic_regression_on_a_nonlinear_signal(trained):
    _, _, result = trained
    auc = {kind: result["metrics"][kind]["roc_auc"] for kind in churn.KINDS}
    assert auc["hgb"] >= auc["logreg"]
    assert result["best_kind"] == "hgb" and result["best_model"] is result["models"]["hgb"]
    assert result["validation_metric"] == churn.VALIDATION_METRIC == "roc_auc"


def test_calibrated_models_have_small_expected_calibration_error(trained):
    _, valid, result = trained
    for kind in churn.KINDS:
        assert result["metrics"][kind]["ece"] <= 0.05, kind
        assert expected_calibration_error(valid.churned, result["valid_scores"][kind]) <= 0.05


@pytest.mark.parametrize(
    ("p", "band"),
    [(0.0, "low"), (0.19, "low"), (0.2, "medium"), (0.49, "medium"), (0.5, "high"), (1.0, "high")],
)
def test_risk_band_thresholds(p, band):
    assert churn.risk_band(p) == band


def test_calibration_is_cross_fitted_on_two_halves_and_scores_their_average(trained):
    _, valid, result = trained
    X = churn.feature_matrix(valid)
    for kind in churn.KINDS:
        model = result["models"][kind]
        calibrated, steps = model[-1], model[:-1]
        inputs = steps.transform(X) if len(steps) else X
        # Two half-size fits, each mapped on the other half: not five folds, not one slice.
        assert (
            len(calibrated.calibrated_classifiers_) == calibrated.cv.get_n_splits() == churn.CALIBRATION_FOLDS
        )
        halves = [c.predict_proba(inputs)[:, 1] for c in calibrated.calibrated_classifiers_]
        assert not np.allclose(halves[0], halves[1])
        np.testing.assert_allclose(churn.predict_churn(model, valid), np.mean(halves, axis=0))
    # The refit grows the mean of the halves' early-stopped tree counts.
    trees = [c.estimator.n_iter_ for c in result["models"]["hgb"][-1].calibrated_classifiers_]
    assert churn.boosting_iterations(result["models"]["hgb"]) == round(sum(trees) / len(trees))


def test_a_fit_of_many_rows_is_calibrated_on_one_held_out_slice(trained, monkeypatch):
    train, valid, _ = trained
    assert churn.calibration_folds_for(churn.CROSS_FIT_MAX_ROWS) == churn.CALIBRATION_FOLDS
    assert churn.calibration_folds_for(churn.CROSS_FIT_MAX_ROWS + 1) == 1
    # Past the threshold: one classifier fitted on 1 - CALIBRATION_SHARE of the rows, one model.
    monkeypatch.setattr(churn, "CROSS_FIT_MAX_ROWS", len(train) - 1)
    calibrated = churn.train_and_evaluate(train, valid, kinds=("hgb",))["models"]["hgb"][-1]
    assert len(calibrated.calibrated_classifiers_) == calibrated.cv.get_n_splits() == 1
    assert calibrated.cv.test_size == churn.CALIBRATION_SHARE


def test_risk_bands_of_an_array_match_risk_band():
    p = np.array([0.0, 0.19, 0.2, 0.49, 0.5, 0.73, 1.0])
    assert churn.risk_bands(p).tolist() == [churn.risk_band(x) for x in p]
    with pytest.raises(ValueError, match="must be in"):
        churn.risk_bands(np.array([0.3, 1.2]))


def test_risk_band_refuses_a_non_probability():
    with pytest.raises(ValueError, match="must be in"):
        churn.risk_band(1.2)


@pytest.mark.parametrize(
    ("p", "clv_tier", "action"),
    [
        (0.8, "high", "call"),
        (0.8, "medium", "coupon"),
        (0.3, "medium", "coupon"),
        (0.3, "high", "nothing"),
        (0.8, "low", "nothing"),
        (0.1, "high", "nothing"),
        (0.8, "HIGH", "call"),
    ],
)
def test_suggested_action_follows_the_rule_table(p, clv_tier, action):
    assert churn.suggested_action(p, clv_tier, "at_risk") == action


def test_suggested_actions_of_arrays_match_suggested_action(monkeypatch):
    # With segment rules too, one of them ahead of a rule it overlaps (the first match wins), so
    # the column-wise form is checked on every part of a rule.
    rules = (
        {"risk": {"high"}, "clv_tier": {"high"}, "rfm_segment": {"champions"}, "action": "coupon"},
        *churn.ACTION_RULES[:1],
        {"risk": {"medium"}, "clv_tier": {"low"}, "rfm_segment": {"at risk"}, "action": "coupon"},
        *churn.ACTION_RULES[1:],
    )
    monkeypatch.setattr(churn, "ACTION_RULES", rules)
    grid = list(
        itertools.product(
            [0.0, 0.19, 0.2, 0.35, 0.5, 0.9, 1.0],
            ["high", "medium", "low", "HIGH", None],
            [None, "At Risk", "champions"],
        )
    )
    p, tiers, segments = (list(column) for column in zip(*grid, strict=True))
    expected = [churn.suggested_action(*args) for args in grid]
    assert "coupon" in expected and "call" in expected
    assert churn.suggested_actions(np.array(p), tiers, segments).tolist() == expected


def test_figures_render_from_aggregates(trained):
    _, valid, result = trained
    y, scores = valid.churned.to_numpy(), result["valid_scores"]
    X = churn.feature_matrix(valid).head(500)
    importance = plots.feature_importance(result["models"]["hgb"], X, y[:500], n_repeats=2)
    coefficients = plots.coefficients(result["models"]["logreg"], churn.FEATURES)
    assert importance.index[0] in {"recency_days", "tenure_days", "spend_trend"}
    assert set(churn.FEATURES) <= set(coefficients.index)
    figures = [
        plots.roc_figure(y, scores),
        plots.pr_figure(y, scores),
        plots.calibration_figure(y, scores),
        plots.gains_figure(y, scores["hgb"]),
        plots.importance_figure(importance),
        plots.importance_figure(coefficients, title="Logistic regression coefficients"),
    ]
    for fig in figures:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        assert buffer.getvalue().startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with isolated_mlflow_state():
        registry.configure(uri, str(root / "artifacts"))
        registry.get_or_create_experiment("churn-tests", str(root / "artifacts"))
        yield uri


def test_champion_scores_probabilities_in_a_fresh_process(trained, mlflow_store, tmp_path):
    train, valid, result = trained
    with mlflow.start_run() as run:
        info = churn.log_churn_model(result["best_model"], train)
        mlflow.log_metrics(result["metrics"][result["best_kind"]])
    version = registry.register(run.info.run_id, "model", churn.MODEL_NAME)
    promoted, _ = registry.promote_if_better(churn.MODEL_NAME, version, churn.VALIDATION_METRIC)
    assert promoted

    # The example in the artifacts is one synthetic row of medians, not a customer's row.
    example = mlflow.models.Model.load(info.model_uri).load_input_example(
        mlflow.artifacts.download_artifacts(info.model_uri)
    )
    assert example.shape == (1, len(churn.FEATURES))

    scoring = valid.head(50).copy()  # extra columns (ids, label) and int dtypes as the SQL gives them
    scoring.to_parquet(tmp_path / "features.parquet")
    script = (
        "import json, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({mlflow_store!r})\n"
        "model = mlflow.pyfunc.load_model('models:/churn@champion')\n"
        f"p = model.predict(pd.read_parquet({str(tmp_path / 'features.parquet')!r}))\n"
        "print(json.dumps({'type': type(p).__name__, 'shape': list(p.shape), 'p': [float(x) for x in p]}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    scored = json.loads(out.stdout.strip().splitlines()[-1])
    assert scored["type"] == "ndarray" and scored["shape"] == [50]
    p = np.array(scored["p"])
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p, churn.predict_churn(result["best_model"], scoring))


def test_platform_scoring_skips_mlflows_value_by_value_check_and_scores_the_same(trained, mlflow_store):
    # The champion as the churn_scores asset loads it: score_latest calls the wrapped model
    # directly (MLflow would check each value of the `Any` columns in Python) and must give
    # exactly what the pyfunc's own predict gives.
    _, valid, _ = trained
    model = mlflow.pyfunc.load_model(f"models:/{churn.MODEL_NAME}@{registry.CHAMPION}")
    assert churn._predictor(model) != model.predict
    latest = valid[valid[churn.AS_OF] == valid[churn.AS_OF].max()]
    scored = churn.score_latest(model, latest)
    expected = np.clip(np.asarray(model.predict(churn.feature_matrix(latest)), dtype=float), 0, 1)
    np.testing.assert_array_equal(scored["churn_probability"].to_numpy(), expected)
    assert list(scored["risk_band"]) == list(churn.risk_bands(expected))


# ---------------------------------------------------------------- data a company really has

# An orders-only company (no clickstream, reviews or tickets): those features come out of the SQL
# empty (NaN) or constant (0 counts).
EMPTY_WITHOUT_SOURCES = [
    "cart_abandon_rate_90d",
    "avg_review_score",
    "review_sentiment",
    "days_since_last_visit",
]
ZERO_WITHOUT_SOURCES = ["visits_30d", "visits_90d", "tickets_180d", "complaints_180d"]


@pytest.fixture(scope="module")
def orders_only_table() -> pd.DataFrame:
    df = synthetic_feature_table(1_500, seed=3)
    df[EMPTY_WITHOUT_SOURCES] = np.nan
    df[ZERO_WITHOUT_SOURCES] = 0
    return df


def test_usable_features_name_the_empty_and_constant_ones(orders_only_table):
    used, dropped = churn.usable_features(orders_only_table)
    assert dropped == {
        **dict.fromkeys(EMPTY_WITHOUT_SOURCES, "empty"),
        **dict.fromkeys(ZERO_WITHOUT_SOURCES, "constant"),
    }
    assert used == [f for f in churn.FEATURES if f not in dropped]


@pytest.mark.slow
def test_training_on_all_null_columns_drops_them_and_serves_every_feature(orders_only_table):
    # Boosted trees crash on an all-NaN column ("window shape cannot be larger than input array").
    result = churn.train(orders_only_table, churn.TrainingOptions(refit_on_all_labelled=False))
    assert set(result["dropped_features"]) == set(EMPTY_WITHOUT_SOURCES + ZERO_WITHOUT_SOURCES)
    assert set(result["metrics"]) == set(churn.DEFAULT_KINDS) == {"hgb"}
    assert result["metrics"][result["best_kind"]]["roc_auc"] > 0.6
    # The model still takes every feature (the served signature), whatever the values there.
    latest = orders_only_table[orders_only_table[churn.AS_OF] == orders_only_table[churn.AS_OF].max()].head(
        50
    )
    noisy = latest.assign(**{name: 7.0 for name in EMPTY_WITHOUT_SOURCES})
    p = churn.predict_churn(result["final_model"], latest)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(churn.predict_churn(result["final_model"], noisy), p)


def test_too_little_to_train_says_why(orders_only_table):
    assert churn.too_little_to_train(orders_only_table) is None
    one_snapshot = orders_only_table[orders_only_table[churn.AS_OF] == orders_only_table[churn.AS_OF].min()]
    assert "labelled snapshot" in churn.too_little_to_train(one_snapshot)
    all_churned = orders_only_table.assign(churned=1)
    assert "each outcome needs" in churn.too_little_to_train(all_churned)
    assert "empty" in churn.too_little_to_train(orders_only_table.head(0))
    with pytest.raises(ValueError, match="labelled snapshot"):
        churn.train(one_snapshot)
