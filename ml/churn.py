"""Churn model: definition, features, estimators, time-based validation and actions.

Churn definition: a customer active before the as-of date *churns* when they make **no
purchase in the ``HORIZON_DAYS`` days starting at the as-of date**. The feature table
(built in SQL) has one row per ``(customer_id, as_of_date)``; its features use only data
before ``as_of_date`` and ``churned`` is 1 when no order falls in
``[as_of_date, as_of_date + HORIZON_DAYS)``.

Everything here is a pure function of DataFrames except ``log_churn_model``, which logs to
the active MLflow run. Nothing here reads the warehouse.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from ml import metrics, plots
from ml.pyfunc import lazy_subclass, python_model

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from sklearn.pipeline import Pipeline

HORIZON_DAYS = 90
CUSTOMER_ID = "customer_id"
AS_OF = "as_of_date"
LABEL = "churned"
MODEL_NAME = "churn"

FEATURE_DESCRIPTIONS: dict[str, str] = {
    "recency_days": "days from the last order to the as-of date (NaN if the customer never ordered)",
    "frequency_90d": "orders in the 90 days before the as-of date",
    "frequency_365d": "orders in the 365 days before the as-of date",
    "monetary_90d": "net spend in the 90 days before the as-of date",
    "monetary_365d": "net spend in the 365 days before the as-of date",
    "frequency_trend": "orders in the last 90 days minus orders in the 90 days before those",
    "spend_trend": "spend in the last 90 days minus spend in the 90 days before those",
    "visits_30d": "web/app sessions in the 30 days before the as-of date",
    "visits_90d": "web/app sessions in the 90 days before the as-of date",
    "visit_trend": "sessions in the last 45 days minus sessions in the 45 days before those",
    "cart_abandon_rate_90d": "share of carts in the last 90 days not followed by an order (NaN without carts)",
    "tickets_180d": "support tickets opened in the last 180 days",
    "complaints_180d": "support tickets classified as complaints in the last 180 days",
    "avg_review_score": "mean product review rating given by the customer (NaN without reviews)",
    "review_sentiment": "mean sentiment of the customer's review texts in [-1, 1] (NaN without reviews)",
    "tenure_days": "days from the first known interaction to the as-of date",
    "store_share": "share of the last 365 days' orders placed in a physical store",
    "app_share": "share of the last 365 days' orders placed in the mobile app",
    "promo_share": "share of the last 365 days' orders that used a promotion",
    "days_since_last_visit": "days from the last web/app session to the as-of date (NaN without sessions)",
    "avg_order_value": "monetary_365d / frequency_365d (NaN without orders)",
    # Purchase rate over the whole history: a steadier estimate than one year's count, and with
    # the first order's age it separates a slow buyer from one who has stopped.
    "frequency_all": "orders before the as-of date, whole history",
    "order_rate": "frequency_all / tenure_days: orders per day since first known (NaN without tenure)",
    "first_purchase_days": "days from the first order to the as-of date (NaN if the customer never ordered)",
    "frequency_180d": "orders in the 180 days before the as-of date",
    "frequency_same_window_last_year": "orders in the horizon's window one year earlier (same season, e.g. Singles' Day)",
    "sale_orders_all": "orders in the run-ups to Singles' Day (Nov 1-11) and the 618 sale (Jun 1-18), whole history",
    "visits_365d": "web/app sessions in the 365 days before the as-of date",
    "visits_prev_90d": "web/app sessions 180 to 90 days before the as-of date",
    "complaints_refunds_90d": "complaint or refund tickets opened in the last 90 days",
    "days_since_last_ticket_180d": "days from the last support ticket of the last 180 days (NaN without one)",
    "reviews_120d": "product reviews written in the last 120 days",
    "avg_review_score_120d": "mean rating of the reviews written in the last 120 days (NaN without any)",
}
FEATURES: list[str] = list(FEATURE_DESCRIPTIONS)

KINDS = ("logreg", "hgb")
# Trained by default: the boosted trees alone. The logistic regression stays a kind one can ask
# for, and ``c360 eval churn`` fits it as the baseline; competing by default it cost a second fit
# and, on small real data (CDNOW), won on validation-AUC noise with a worse calibration.
DEFAULT_KINDS = ("hgb",)
VALIDATION_METRIC = "roc_auc"
# Sigmoid (Platt) rather than isotonic: fitted on one held-out slice, isotonic's steps tied
# thousands of customers at one probability and cost ranking (demo truth AUC 0.0003-0.0008 below
# the uncalibrated trees'); a strictly increasing map keeps the trees' ranking, at the same ECE.
CALIBRATION_METHOD = "sigmoid"
# How the probabilities are calibrated depends on how many rows a fit has:
# - Up to CROSS_FIT_MAX_ROWS, cross-fitted on two halves: trees fitted on each half are mapped on
#   the other, and a score is the average of the two. On the demo (49k training and 69k labelled
#   rows), 18 paired fits on two demos against the generator's truth, compared with the 5-fold
#   models of before issue 19 (AUC 0.8463, ECE 0.0173, 44 training CPU-s): one 20% slice had an
#   ECE 0.0028 higher (in 17 of 18 fits) and an AUC 0.0005 lower, in 11 CPU-s; two halves an ECE
#   0.0006 higher (lower in 7 of 18; standard error 0.0004) and an AUC 0.0004 higher, in 15 CPU-s.
#   On a small table, averaging two models removes variance a single model's mean carries.
# - Above it, one held-out slice of CALIBRATION_SHARE: one fit, one model to score. At 100k
#   customers (over 250k rows) the halves gave no better scores against the truth (ECE 0.0161
#   against 0.0141, AUC 0.8469 / 0.8468, 3 seeds), and at 1M (500k sampled rows) they validated
#   equal (AUC 0.8591 / 0.8592, ECE 0.0381 both) while training in 145 s instead of 90 and
#   scoring 21k customers/s instead of 45k (2 threads).
# (benchmarks/notes/issue19_churn_sentiment.md)
CROSS_FIT_MAX_ROWS = 100_000
CALIBRATION_FOLDS = 2
CALIBRATION_SHARE = 0.2

# Early stopping's ceiling: at learning rate 0.03 the demo stops at 270-400 trees.
HGB_MAX_ITER = 600

# A model needs both outcomes among its labelled rows, and enough of the rarer one for the
# calibration slice (and boosting's own early-stopping split) to each hold some.
MIN_ROWS_PER_CLASS = 25

# skops refuses to load types it does not know; these are the reviewed extras our pipelines use.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.model_selection._split.StratifiedShuffleSplit",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]

# Permutation importance on a fixed sample: the ranking is stable, and features x 3 re-scorings of
# the full validation set would cost more than the training.
IMPORTANCE_SAMPLE = 5000

# Probability thresholds, checked top-down: first band whose lower bound p reaches.
RISK_BANDS: tuple[tuple[str, float], ...] = (("high", 0.50), ("medium", 0.20), ("low", 0.0))

# First matching rule wins; None matches anything. clv_tier is "high" | "medium" | "low".
ACTION_RULES: tuple[dict, ...] = (
    {"risk": {"high"}, "clv_tier": {"high"}, "rfm_segment": None, "action": "call"},
    {"risk": {"high", "medium"}, "clv_tier": {"medium"}, "rfm_segment": None, "action": "coupon"},
)
DEFAULT_ACTION = "nothing"


def estimator(
    kind: str = "hgb",
    calibrate: bool = True,
    random_state: int = 0,
    calibration: str = CALIBRATION_METHOD,
    features: list[str] | None = None,
    max_iter: int | None = None,
    calibration_folds: int = CALIBRATION_FOLDS,
) -> Pipeline:
    """Unfitted pipeline taking ``df[FEATURES]`` (NaN allowed) and predicting churn probability.

    ``logreg``: median imputation with missing-value indicators, scaling, logistic regression.
    ``hgb``: histogram gradient boosting, which handles NaN natively.
    With ``calibrate`` the classifier step is a ``CalibratedClassifierCV``: with
    ``calibration_folds`` of 2 or more (``calibration_folds_for`` chooses), on that many stratified
    folds, a classifier fitted on each fold's other rows and its sigmoid map on the fold, a score
    the average of the calibrated classifiers; with 1, a classifier fitted on ``1 -
    CALIBRATION_SHARE`` of the rows and its map on the rest, one model. With ``features`` (a
    subset of ``FEATURES``) a first step keeps only those: the input, and so the served
    signature, stays every feature while the model sees only the ones the data fills.
    ``hgb`` stops early on 15% of its rows, or with ``max_iter`` (``boosting_iterations`` of a
    fitted one) grows exactly that many trees on all of them.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        steps = [
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
        classifier = LogisticRegression(C=1.0, max_iter=2000)
    elif kind == "hgb":
        steps = []
        classifier = HistGradientBoostingClassifier(
            learning_rate=0.03,
            max_iter=HGB_MAX_ITER if max_iter is None else max_iter,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=max_iter is None,
            validation_fraction=0.15,
            n_iter_no_change=20,
            random_state=random_state,
        )
    else:
        raise ValueError(f"unknown estimator kind {kind!r}; expected one of {KINDS}")
    if calibrate:
        if calibration_folds > 1:
            folds = StratifiedKFold(n_splits=calibration_folds, shuffle=True, random_state=random_state)
        else:
            folds = StratifiedShuffleSplit(n_splits=1, test_size=CALIBRATION_SHARE, random_state=random_state)
        classifier = CalibratedClassifierCV(classifier, method=calibration, cv=folds)
    if features is not None and list(features) != FEATURES:
        unknown = sorted(set(features) - set(FEATURES))
        if unknown or not features:
            raise ValueError(f"features must be a non-empty subset of FEATURES; unknown: {unknown}")
        keep = ColumnTransformer([("used", "passthrough", list(features))], remainder="drop")
        steps = [("select", keep), *steps]
    return Pipeline([*steps, ("classifier", classifier)])


def calibration_folds_for(rows: int) -> int:
    """Two cross-fitted halves for a fit of up to ``CROSS_FIT_MAX_ROWS`` rows, else one held-out
    slice (see ``CROSS_FIT_MAX_ROWS``)."""
    return CALIBRATION_FOLDS if rows <= CROSS_FIT_MAX_ROWS else 1


def boosting_iterations(model) -> int | None:
    """Trees grown by a fitted ``hgb`` pipeline (after early stopping; the mean over its
    calibration folds), None for other kinds."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    fitted = plots.fitted_classifiers(model)
    if not isinstance(fitted[0], HistGradientBoostingClassifier):
        return None
    return round(sum(int(f.n_iter_) for f in fitted) / len(fitted))


def usable_features(df: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The features ``df`` can teach a model something with, and the others with why not.

    A feature is dropped when it is empty (no value at all: a source the company does not have,
    e.g. no clickstream) or constant (one value for everyone, e.g. 0 visits). Empty ones would
    crash the boosted trees' binning; constant ones carry no signal.
    """
    X = feature_matrix(df)
    used, dropped = [], {}
    for name in FEATURES:
        column = X[name]
        if column.notna().sum() == 0:
            dropped[name] = "empty"
        elif column.nunique(dropna=True) < 2 and not column.isna().any():
            dropped[name] = "constant"
        else:
            used.append(name)
    return used, dropped


def too_little_to_train(features_df: pd.DataFrame) -> str | None:
    """Why no churn model can be trained on ``features_df``, or None when one can."""
    if features_df.empty:
        return "features.churn_features is empty (no customer with an order or a visit)"
    labelled = features_df[features_df[LABEL].notna()]
    snapshots = labelled[AS_OF].nunique()
    if snapshots < 2:
        return (
            f"{snapshots} labelled snapshot(s); a time split needs two, i.e. at least "
            f"{2 * HORIZON_DAYS} days of history before the last {HORIZON_DAYS} (the label window)"
        )
    counts = labelled[LABEL].astype(int).value_counts()
    rarer = min(int(counts.get(0, 0)), int(counts.get(1, 0)))
    if rarer < MIN_ROWS_PER_CLASS:
        return (
            f"{int(counts.get(1, 0))} churned and {int(counts.get(0, 0))} retained labelled rows; "
            f"each outcome needs at least {MIN_ROWS_PER_CLASS}"
        )
    used, _ = usable_features(labelled)
    if not used:
        return "every feature is empty or constant"
    return None


def feature_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """The model input: ``FEATURES`` in order, as float (NaN for missing)."""
    missing = [c for c in FEATURES if c not in df.columns]
    if missing:
        raise ValueError(f"feature table lacks columns {missing}")
    return df[FEATURES].astype("float64")


def labels(df: pd.DataFrame) -> np.ndarray:
    if LABEL not in df.columns:
        raise ValueError(f"feature table lacks the label column {LABEL!r}")
    y = df[LABEL]
    if y.isna().any():
        raise ValueError(f"{LABEL!r} has missing values; rows whose horizon is not over cannot train")
    return y.astype(int).to_numpy()


def time_split(
    features_df: pd.DataFrame, train_cutoff, valid_cutoff, horizon_days: int = HORIZON_DAYS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on all snapshots with ``as_of_date <= train_cutoff``, validate on ``valid_cutoff``.

    Raises ValueError when a training label window reaches the validation as-of date
    (``train as_of + horizon_days > valid as_of``): the model would learn outcomes that are
    still in the future at validation time.
    """
    import pandas as pd

    train_cutoff, valid_cutoff = pd.Timestamp(train_cutoff), pd.Timestamp(valid_cutoff)
    as_of = pd.to_datetime(features_df[AS_OF])
    train = features_df[as_of <= train_cutoff]
    valid = features_df[as_of == valid_cutoff]
    if train.empty:
        raise ValueError(f"no training rows with {AS_OF} <= {train_cutoff.date()}")
    if valid.empty:
        raise ValueError(f"no validation rows with {AS_OF} == {valid_cutoff.date()}")
    last_train = pd.to_datetime(train[AS_OF]).max()
    label_end = last_train + pd.Timedelta(days=horizon_days)
    if label_end > valid_cutoff:
        raise ValueError(
            f"training labels overlap validation: rows as of {last_train.date()} are labelled with "
            f"orders up to {label_end.date()}, after the validation as-of date {valid_cutoff.date()}; "
            f"move train_cutoff to {(valid_cutoff - pd.Timedelta(days=horizon_days)).date()} or earlier"
        )
    return train.reset_index(drop=True), valid.reset_index(drop=True)


def cap_rows(df: pd.DataFrame, max_rows: int | None, random_state: int = 0) -> pd.DataFrame:
    """``df`` itself when it has at most ``max_rows`` rows, else a uniform random sample of
    ``max_rows`` rows (the same share of every snapshot, in expectation), in the original order.

    Why: past a few hundred thousand rows the boosted trees' validation AUC stops moving while the
    fit time keeps growing linearly (two fits: validation, then the refit), so at 1M customers x
    5 snapshots training on everything buys nothing.
    """
    if max_rows is None or len(df) <= max_rows:
        return df
    if max_rows < 1:
        raise ValueError(f"max_rows must be positive, got {max_rows}")
    return df.sample(n=max_rows, random_state=random_state).sort_index().reset_index(drop=True)


def predict_churn(model, df: pd.DataFrame) -> np.ndarray:
    """Churn probability per row (positive-class column of ``predict_proba``)."""
    proba = model.predict_proba(feature_matrix(df))
    return proba[:, list(model.classes_).index(1)]


def train_and_evaluate(
    train_df: pd.DataFrame,
    valid_df: pd.DataFrame,
    kinds: tuple[str, ...] = KINDS,
    calibrate: bool = True,
    random_state: int = 0,
    features: list[str] | None = None,
) -> dict:
    """Fit each kind on ``train_df``, score ``valid_df``, pick the best by ``VALIDATION_METRIC``.

    Returns ``{"models": {kind: pipeline}, "metrics": {kind: report}, "valid_scores":
    {kind: probabilities}, "best_kind": kind, "best_model": pipeline, "validation_metric": name}``.
    ``valid_scores`` are per-row and meant for in-memory plots only, never for logging.
    """
    X_train, y_train = feature_matrix(train_df), labels(train_df)
    y_valid = labels(valid_df)
    models, reports, scores = {}, {}, {}
    for kind in kinds:
        model = estimator(
            kind,
            calibrate=calibrate,
            random_state=random_state,
            features=features,
            calibration_folds=calibration_folds_for(len(X_train)),
        )
        model.fit(X_train, y_train)
        scores[kind] = predict_churn(model, valid_df)
        models[kind] = model
        reports[kind] = metrics.classification_report(y_valid, scores[kind])
    best = max(kinds, key=lambda k: np.nan_to_num(reports[k][VALIDATION_METRIC], nan=-np.inf))
    return {
        "models": models,
        "metrics": reports,
        "valid_scores": scores,
        "best_kind": best,
        "best_model": models[best],
        "validation_metric": VALIDATION_METRIC,
    }


@dataclass(frozen=True)
class TrainingOptions:
    """How ``train`` fits: which snapshot validates, which estimators compete, on how many rows."""

    validation_as_of: str | None = None  # default: the latest snapshot whose label window is over
    kinds: tuple[str, ...] = DEFAULT_KINDS
    refit_on_all_labelled: bool = True
    random_state: int = 0
    max_training_rows: int | None = 500_000
    threads: int = 2


def split_snapshots(features_df: pd.DataFrame, validation_as_of: str | None = None):
    """(train, valid, labelled, valid_as_of): validate on the latest labelled snapshot (or the
    one asked for), train on the snapshots whose label window ends by then."""
    import pandas as pd

    labelled = features_df[features_df[LABEL].notna()].reset_index(drop=True)
    if labelled.empty:
        raise ValueError("the feature table has no labelled snapshot: the data is shorter than the horizon")
    valid_as_of = pd.Timestamp(validation_as_of) if validation_as_of else labelled[AS_OF].max()
    train_cutoff = valid_as_of - pd.Timedelta(days=HORIZON_DAYS)
    train, valid = time_split(labelled, train_cutoff, valid_as_of)
    return train, valid, labelled, valid_as_of


def train(features_df: pd.DataFrame, options: TrainingOptions = TrainingOptions()) -> dict:
    """Fit, validate and (optionally) refit. Returns the ``train_and_evaluate`` dict plus
    ``final_model``, ``train``, ``valid``, ``labelled``, ``valid_as_of``, ``available`` (rows
    before ``cap_rows``), ``features`` (used) and ``dropped_features`` (name -> why), and the
    seconds spent validating and refitting. Raises ValueError (``too_little_to_train``'s
    reason) when no model can be trained."""
    if reason := too_little_to_train(features_df):
        raise ValueError(reason)
    train_df, valid, labelled, valid_as_of = split_snapshots(features_df, options.validation_as_of)
    # Judged on the training rows: the validation fit must not choose with knowledge of later data.
    used, dropped = usable_features(train_df)
    available = {"train": len(train_df), "labelled": len(labelled)}
    train_df = cap_rows(train_df, options.max_training_rows, options.random_state)
    labelled = cap_rows(labelled, options.max_training_rows, options.random_state)
    with threadpool_limits(limits=options.threads):
        started = time.perf_counter()
        result = train_and_evaluate(
            train_df, valid, kinds=tuple(options.kinds), random_state=options.random_state, features=used
        )
        result["validation_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        if options.refit_on_all_labelled:
            # As many trees as early stopping chose on the training snapshots: the refit then
            # needs no early-stopping slice of its own, so its trees see every non-calibration row.
            final = estimator(
                result["best_kind"],
                random_state=options.random_state,
                features=used,
                max_iter=boosting_iterations(result["best_model"]),
                calibration_folds=calibration_folds_for(len(labelled)),
            )
            final.fit(feature_matrix(labelled), labels(labelled))
        else:
            final = result["best_model"]
        result["refit_seconds"] = time.perf_counter() - started
    result.update(
        final_model=final,
        train=train_df,
        valid=valid,
        labelled=labelled,
        valid_as_of=valid_as_of,
        available=available,
        features=used,
        dropped_features=dropped,
    )
    return result


def evaluation_figures(result: dict, threads: int = 2) -> tuple[dict, pd.Series]:
    """The validation plots of ``train``'s chosen model, and its permutation importance."""
    y_valid = labels(result["valid"])
    scores = result["valid_scores"]
    sample = result["valid"].sample(n=min(len(result["valid"]), IMPORTANCE_SAMPLE), random_state=0)
    with threadpool_limits(limits=threads):
        importance = plots.feature_importance(
            result["best_model"], feature_matrix(sample), labels(sample), n_repeats=3
        )
    figures = {
        "roc.png": plots.roc_figure(y_valid, scores),
        "pr.png": plots.pr_figure(y_valid, scores),
        "calibration.png": plots.calibration_figure(y_valid, scores),
        "lift.png": plots.gains_figure(y_valid, scores),
        "feature_importance.png": plots.importance_figure(
            importance, title=f"Permutation importance ({result['best_kind']}, validation ROC-AUC)"
        ),
    }
    return figures, importance


def _predictor(model):
    """``model.predict``, or for a pyfunc wrapping ``ChurnProbability`` its own ``predict``.

    Why: the signature's columns are ``Any`` (see ``model_signature``), and MLflow checks an ``Any``
    column value by value: 3.6M Python calls for 100k customers, about 90% of the scoring time.
    The columns come from ``feature_matrix`` here, so that check has nothing to find; callers
    outside the platform (serving) still go through it.
    """
    from mlflow.exceptions import MlflowException

    try:
        inner = model.unwrap_python_model()
    except (AttributeError, MlflowException):  # not a pyfunc python model (an estimator, another flavour)
        return model.predict
    if isinstance(inner, _ChurnProbability_class()):
        return lambda frame: inner.predict(None, frame)
    return model.predict


def score_latest(model, features_df: pd.DataFrame) -> pd.DataFrame:
    """Churn probability and risk band of every customer at the latest as-of date."""
    import pandas as pd

    latest = features_df[features_df[AS_OF] == features_df[AS_OF].max()]
    p = np.clip(np.asarray(_predictor(model)(feature_matrix(latest)), dtype=float).ravel(), 0.0, 1.0)
    return pd.DataFrame(
        {
            CUSTOMER_ID: latest[CUSTOMER_ID].to_numpy(),
            "churn_probability": p,
            "risk_band": risk_bands(p),
            AS_OF: latest[AS_OF].dt.date.to_numpy(),
        }
    )


def risk_band(p: float) -> str:
    """ "high" (p >= 0.5), "medium" (p >= 0.2) or "low"; see ``RISK_BANDS``."""
    if not 0 <= p <= 1:
        raise ValueError(f"churn probability must be in [0, 1], got {p}")
    return next(band for band, lower in RISK_BANDS if p >= lower)


def risk_bands(p: np.ndarray) -> np.ndarray:
    """``risk_band`` of every probability at once (a Python call per customer costs seconds at 1M)."""
    p = np.asarray(p, dtype=float)
    if p.size and not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"churn probabilities must be in [0, 1], got {p[~((p >= 0) & (p <= 1))][:3]}")
    bands = np.full(p.shape, RISK_BANDS[-1][0], dtype=object)
    for band, lower in reversed(RISK_BANDS[:-1]):
        bands[p >= lower] = band
    return bands


def suggested_action(p: float, clv_tier: str, rfm_segment: str | None = None) -> str:
    """ "call", "coupon" or "nothing" from the first matching row of ``ACTION_RULES``."""
    band = risk_band(p)
    tier = str(clv_tier).lower()
    segment = None if rfm_segment is None else str(rfm_segment).lower()
    for rule in ACTION_RULES:
        if (
            band in rule["risk"]
            and tier in rule["clv_tier"]
            and (rule["rfm_segment"] is None or segment in rule["rfm_segment"])
        ):
            return rule["action"]
    return DEFAULT_ACTION


def suggested_actions(p: np.ndarray, clv_tier, rfm_segment=None) -> np.ndarray:
    """``suggested_action`` of every customer at once: the rules applied column-wise, first
    match wins (a Python call per customer took 2.2 s for the 475k high-risk customers at 1M).
    ``clv_tier`` and ``rfm_segment`` are array-likes of strings (null: no tier, no segment)."""
    import pandas as pd

    bands = risk_bands(p)
    tier = pd.Series(clv_tier, dtype=object).fillna("none").astype(str).str.lower().to_numpy(dtype=object)
    segment = (
        np.full(len(bands), None, dtype=object)
        if rfm_segment is None
        else pd.Series(rfm_segment, dtype=object).str.lower().to_numpy(dtype=object)
    )
    actions = np.full(len(bands), DEFAULT_ACTION, dtype=object)
    undecided = np.ones(len(bands), dtype=bool)
    for rule in ACTION_RULES:
        match = undecided & np.isin(bands, list(rule["risk"])) & np.isin(tier, list(rule["clv_tier"]))
        if rule["rfm_segment"] is not None:
            match &= np.isin(segment, list(rule["rfm_segment"]))
        actions[match] = rule["action"]
        undecided &= ~match
    return actions


class _ChurnProbability:
    """pyfunc wrapper whose ``predict`` returns the churn probability, not the class label.

    The fitted pipeline is stored as a nested scikit-learn MLflow model (skops format) under
    the artifact ``sklearn_model``, so ``mlflow.sklearn.load_model`` can still open it.
    """

    def load_context(self, context):
        import mlflow
        import mlflow.sklearn

        self.model = mlflow.sklearn.load_model(context.artifacts["sklearn_model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        import pandas as pd

        return predict_churn(self.model, pd.DataFrame(model_input))


def _ChurnProbability_class() -> type:
    """``ChurnProbability``: ``_ChurnProbability`` on MLflow's base class, built on first use (import cost, ml/pyfunc.py)."""
    return lazy_subclass(globals(), "ChurnProbability", _ChurnProbability, python_model)


def __getattr__(attr: str) -> type:
    if attr == "ChurnProbability":
        return _ChurnProbability_class()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def model_signature() -> ModelSignature:
    """Requires every feature column; types are ``Any`` because MLflow refuses int64 -> double
    (DuckDB counts are BIGINT) and ``ChurnProbability`` casts to float itself."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    inputs = Schema([ColSpec(AnyType(), name) for name in FEATURES])
    outputs = Schema([ColSpec("double", "churn_probability")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _pinned(*packages: str) -> list[str]:
    return [f"{p}=={importlib.metadata.version(p)}" for p in packages]


def log_churn_model(model: Pipeline, reference_df: pd.DataFrame, name: str = "model"):
    """Log ``model`` to the active MLflow run so pyfunc ``predict`` returns probabilities.

    The input example is one synthetic row of per-feature medians of ``reference_df``, so no
    customer's own row lands in the artifacts. Returns the ``ModelInfo``.
    """
    import mlflow
    import mlflow.sklearn

    example = feature_matrix(reference_df).median().to_frame().T.fillna(0.0)
    requirements = _pinned("mlflow", "scikit-learn", "skops", "pandas", "numpy")
    with tempfile.TemporaryDirectory() as tmp:
        sklearn_dir = Path(tmp) / "sklearn_model"
        mlflow.sklearn.save_model(
            model,
            sklearn_dir,
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pyfunc_predict_fn="predict_proba",
            signature=False,
            pip_requirements=requirements,
        )
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=_ChurnProbability_class()(),
            artifacts={"sklearn_model": str(sklearn_dir)},
            signature=model_signature(),
            input_example=example,
            pip_requirements=requirements,
        )
