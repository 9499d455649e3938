"""Evaluation figures for probability models, ready for ``mlflow.log_figure`` or Dagster metadata.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never pyplot, so they
work in worker processes without a display and leave no global state behind. Every figure
shows curves or binned aggregates only; no point stands for a single customer.

``scores`` arguments accept one array of probabilities or ``{label: probabilities}`` to
overlay several models on the same validation labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ml import metrics

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def _figure(title: str, size=(6.0, 4.5)) -> tuple[Figure, object]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _named(scores) -> dict[str, np.ndarray]:
    if isinstance(scores, Mapping):
        return {name: np.asarray(s, dtype=float) for name, s in scores.items()}
    return {"model": np.asarray(scores, dtype=float)}


def roc_figure(y_true, scores, title: str = "ROC curve") -> Figure:
    from sklearn.metrics import roc_curve

    fig, ax = _figure(title)
    for name, p in _named(scores).items():
        fpr, tpr, _ = roc_curve(y_true, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics.roc_auc(y_true, p):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return fig


def pr_figure(y_true, scores, title: str = "Precision-recall curve") -> Figure:
    from sklearn.metrics import precision_recall_curve

    fig, ax = _figure(title)
    for name, p in _named(scores).items():
        precision, recall, _ = precision_recall_curve(y_true, p)
        ax.plot(recall, precision, label=f"{name} (AP {metrics.pr_auc(y_true, p):.3f})")
    ax.axhline(np.mean(y_true), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper right")
    return fig


def calibration_figure(
    y_true, scores, n_bins: int = metrics.ECE_BINS, title: str = "Calibration (reliability)"
) -> Figure:
    """Observed rate against mean predicted probability per equal-mass bin, with ECE in the legend."""
    fig, ax = _figure(title)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, p in _named(scores).items():
        bins = metrics.calibration_bins(y_true, p, n_bins)
        ece = metrics.expected_calibration_error(y_true, p, n_bins)
        ax.plot(
            [b["mean_predicted"] for b in bins],
            [b["observed_rate"] for b in bins],
            marker="o",
            label=f"{name} (ECE {ece:.3f})",
        )
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return fig


def _cumulative_gains(y: np.ndarray, p: np.ndarray, points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    fractions = np.linspace(0.01, 1, points - 1)
    captured = metrics.capture_curve(y, p, fractions)
    return np.concatenate([[0.0], fractions]), np.concatenate([[0.0], captured])


def gains_figure(y_true, scores, title: str = "Cumulative gains and lift") -> Figure:
    """Left: share of positives captured by targeting the top x%. Right: lift per decile."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    gains_ax, lift_ax = fig.subplots(1, 2)
    y = np.asarray(y_true, dtype=float)
    named = _named(scores)
    width = 0.8 / len(named)
    deciles = np.arange(1, 11)
    for i, (name, p) in enumerate(named.items()):
        fractions, captured = _cumulative_gains(y, p)
        gains_ax.plot(fractions, captured, label=name)
        # Lift of decile d alone = (capture up to d - capture up to d-1) / 0.1.
        cumulative = np.array([0.0] + [metrics.capture_rate(y, p, d / 10) for d in deciles])
        lift_ax.bar(
            deciles + (i - (len(named) - 1) / 2) * width, np.diff(cumulative) / 0.1, width, label=name
        )
    gains_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    gains_ax.set(xlabel="share of customers targeted", ylabel="share of positives captured", xlim=(0, 1))
    gains_ax.legend(loc="lower right")
    lift_ax.axhline(1.0, linestyle="--", color="grey")
    lift_ax.set(xlabel="decile by score (1 = highest)", ylabel="lift", xticks=deciles)
    lift_ax.legend(loc="upper right")
    return fig


def feature_importance(model, X: pd.DataFrame, y, n_repeats: int = 5, random_state: int = 0) -> pd.Series:
    """Mean drop in ROC-AUC when each column is shuffled, sorted descending (any fitted model)."""
    import pandas as pd
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        model, X, y, scoring="roc_auc", n_repeats=n_repeats, random_state=random_state, n_jobs=1
    )
    return pd.Series(result.importances_mean, index=X.columns).sort_values(ascending=False)


def fitted_classifiers(pipeline) -> list:
    """The classifiers a pipeline's last step fitted: one per calibration fold of a
    ``CalibratedClassifierCV``, else the step itself."""
    classifier = pipeline[-1]
    if hasattr(classifier, "calibrated_classifiers_"):
        return [c.estimator for c in classifier.calibrated_classifiers_]
    return [classifier]


def coefficients(pipeline, feature_names) -> pd.Series:
    """Standardised logistic-regression coefficients of a pipeline, averaged over calibration folds.

    Names beyond ``feature_names`` are the imputer's missing-value indicators.
    """
    import pandas as pd

    coef = np.mean([est.coef_[0] for est in fitted_classifiers(pipeline)], axis=0)
    names = (
        list(pipeline[:-1].get_feature_names_out(feature_names)) if len(pipeline) > 1 else list(feature_names)
    )
    return pd.Series(coef, index=names).sort_values(key=np.abs, ascending=False)


def importance_figure(importance: pd.Series, title: str = "Feature importance", top: int = 20) -> Figure:
    """Horizontal bars of ``feature_importance`` or ``coefficients`` output (largest magnitude on top)."""
    shown = importance.reindex(importance.abs().sort_values(ascending=False).index).head(top)[::-1]
    fig, ax = _figure(title, size=(7.0, 0.3 * len(shown) + 1.5))
    ax.barh(shown.index.astype(str), shown.to_numpy(), color=np.where(shown.to_numpy() >= 0, "C0", "C3"))
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set(xlabel=importance.name or "importance")
    return fig


def clv_by_tier_figure(scored: pd.DataFrame) -> Figure:
    """Histogram of CLV (log scale) stacked by tier: bins, no single-customer points."""
    from matplotlib.figure import Figure

    from ml.clv import TIER_SHARES

    figure = Figure(figsize=(7, 4), layout="constrained")
    ax = figure.subplots()
    values = np.log10(1 + scored["clv"].to_numpy())
    bins = np.linspace(0, max(values.max(), 1e-6), 40)
    tiers = [name for name, _ in TIER_SHARES if (scored["clv_tier"] == name).any()]
    ax.hist([values[scored["clv_tier"].to_numpy() == t] for t in tiers], bins=bins, stacked=True, label=tiers)
    ax.set(
        xlabel="log10(1 + CLV)",
        ylabel="customers",
        title=f"CLV distribution by tier ({len(scored):,} customers)",
    )
    ax.legend()
    return figure
