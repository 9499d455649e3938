"""Reading a campaign's lift: a plain-language verdict on its interval, and the sample size a
campaign needs to detect a given lift (two-sided test of two proportions, normal approximation).
The intervals themselves are computed in SQL (marts.campaign_results)."""

from __future__ import annotations

import math
from statistics import NormalDist


def verdict(lift: float | None, low: float | None, high: float | None) -> str:
    """What the interval says, for a person who does not read intervals."""
    if lift is None or low is None or high is None or any(map(math.isnan, (lift, low, high))):
        return "not measurable yet (a group is empty)"
    if low <= 0 <= high:
        return "no effect detectable at this size"
    if low > 0:
        return (
            f"the campaign raised conversion by {lift * 100:.1f} points ({low * 100:.1f} to {high * 100:.1f})"
        )
    return (
        f"the campaign lowered conversion by {-lift * 100:.1f} points ({-high * 100:.1f} to {-low * 100:.1f})"
    )


def required_people_per_group(
    baseline: float, lift: float, alpha: float = 0.05, power: float = 0.8, holdout_share: float = 0.5
) -> tuple[int, int]:
    """(treatment, holdout) people needed to detect an absolute ``lift`` over a ``baseline``
    conversion rate with a two-sided test at ``alpha`` and the given ``power``, when a
    ``holdout_share`` of the audience is held out."""
    if not 0 < baseline < 1:
        raise ValueError(f"baseline must be a rate in (0, 1), not {baseline}")
    if lift == 0 or not 0 < baseline + lift < 1:
        raise ValueError(
            f"baseline + lift must be a rate in (0, 1) and lift non-zero, not {baseline} + {lift}"
        )
    if not 0 < holdout_share < 1:
        raise ValueError(f"holdout_share must be in (0, 1), not {holdout_share}")
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    p_t, p_h = baseline + lift, baseline
    # Var(lift estimate) = p_t(1-p_t)/n_t + p_h(1-p_h)/n_h with n_t = n(1-s), n_h = n s.
    n = z**2 * (p_t * (1 - p_t) / (1 - holdout_share) + p_h * (1 - p_h) / holdout_share) / lift**2
    return math.ceil(n * (1 - holdout_share)), math.ceil(n * holdout_share)
