import math

import numpy as np
import pytest

from ml import metrics

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_roc_auc_counts_correctly_ordered_pairs():
    # Pairs (neg, pos): (0.1,0.35) ok, (0.1,0.8) ok, (0.4,0.35) wrong, (0.4,0.8) ok -> 3/4.
    assert metrics.roc_auc(Y, P) == pytest.approx(0.75)


def test_pr_auc_is_average_precision_over_the_positives():
    # Ranking 0.8(+), 0.4(-), 0.35(+), 0.1(-): precision at each positive is 1 and 2/3.
    assert metrics.pr_auc(Y, P) == pytest.approx((1 + 2 / 3) / 2)


def test_brier_is_mean_squared_error_of_the_probabilities():
    expected = (0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4
    assert metrics.brier(Y, P) == pytest.approx(expected)


def test_ece_weights_each_bins_gap_by_its_size():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.1, 0.1, 0.9, 0.9, 0.9])
    # Two equal-mass bins: mean 0.1 vs rate 1/3, mean 0.9 vs rate 2/3.
    assert metrics.expected_calibration_error(y, p, n_bins=2) == pytest.approx(
        0.5 * (0.7 / 3) + 0.5 * (0.7 / 3)
    )


def test_ece_of_a_perfectly_calibrated_predictor_is_near_zero():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    y = rng.uniform(size=p.size) < p
    assert metrics.expected_calibration_error(y, p) < 0.01


def test_ece_of_an_overconfident_predictor_is_large():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=50_000)
    y = rng.uniform(size=p.size) < 0.5
    assert metrics.expected_calibration_error(y, p) > 0.2


def test_lift_and_capture_of_the_top_decile_by_hand():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.linspace(1, 0, 20)  # top decile = first two rows, both positive
    # positive rate 3/20; top rate 2/2 -> lift 20/3; capture 2 of 3 positives.
    assert metrics.lift(y, p) == pytest.approx(20 / 3)
    assert metrics.capture_rate(y, p) == pytest.approx(2 / 3)


def test_a_constant_predictor_has_auc_one_half_and_lift_one():
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=1_000) < 0.3).astype(int)
    p = np.full(y.size, 0.3)
    assert metrics.roc_auc(y, p) == pytest.approx(0.5)
    assert metrics.lift(y, p) == pytest.approx(1.0)
    assert metrics.capture_rate(y, p) == pytest.approx(0.1)


def test_ties_at_the_cutoff_are_shared_not_decided_by_row_order():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.9, 0, 0, 0, 0, 0, 0, 0, 0])
    # Top 10% is one row out of two tied at 0.9, one of which is positive: half a positive.
    assert metrics.capture_rate(y, p) == pytest.approx(0.5)
    assert metrics.capture_rate(y[::-1], p[::-1]) == pytest.approx(0.5)


def test_capture_curve_shares_ties_and_reaches_every_positive():
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.9, 0.8, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.0])
    fractions = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 1.0])
    # 0.1: half of the tied pair (half a positive); 0.2: the pair; 0.3: + the 0.8 positive;
    # 0.5: two of the four tied at 0.5, which hold one positive: half of it; 0.7: all four.
    expected = np.array([0.5, 1, 2, 2.5, 3, 3]) / 3
    assert metrics.capture_curve(y, p, fractions) == pytest.approx(expected)
    assert [metrics.capture_rate(y, p, f) for f in fractions] == pytest.approx(expected)
    with pytest.raises(ValueError, match="fraction must be in"):
        metrics.capture_curve(y, p, [0.0, 0.5])


def test_report_returns_every_metric_and_undefined_ones_as_nan():
    report = metrics.classification_report(Y, P)
    assert set(report) == {
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "lift_top_decile",
        "capture_top_decile",
        "positive_rate",
        "mean_predicted",
        "n_rows",
    }
    assert report["positive_rate"] == 0.5 and report["n_rows"] == 4
    one_class = metrics.classification_report([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(one_class["roc_auc"]) and math.isnan(one_class["lift_top_decile"])


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.5], "y_true has 2 values but p has 1"),
        ([0, 2], [0.5, 0.5], "only 0 and 1"),
        ([0, 1], [0.5, 1.5], r"probabilities in \[0, 1\]"),
        ([0, 1], [0.5, np.nan], "without NaN"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(y, p, message):
    with pytest.raises(ValueError, match=message):
        metrics.classification_report(y, p)
