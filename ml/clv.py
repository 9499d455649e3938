"""Customer lifetime value: BG/NBD purchase counts, Gamma-Gamma spend, discounted CLV.

Pure functions on per-customer RFM summaries (frequency, recency, T, monetary_value), after
Fader, Hardie & Lee (2005) "Counting your customers the easy way" (BG/NBD) and
"RFM and CLV: using iso-value curves" (Gamma-Gamma). Likelihoods are summed over unique
(x, t_x, T) triples with counts as weights, so a fit on a million customers takes seconds.
In the platform the summary is built in SQL; ``rfm_summary`` is the reference version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ml.pyfunc import lazy_subclass, python_model

if TYPE_CHECKING:
    import pandas as pd

# Share of customers per tier, best first; the last tier takes the rest.
TIER_SHARES: tuple[tuple[str, float], ...] = (
    ("platinum", 0.05),
    ("gold", 0.15),
    ("silver", 0.30),
    ("bronze", 0.50),
)
MODEL_NAME = "clv"
# Fewer customers, or fewer with a repeat purchase, and the BG/NBD likelihood has no information
# to fit on (the optimiser wanders to a bound): no model rather than a meaningless one.
MIN_CUSTOMERS = 20
MIN_REPEAT_CUSTOMERS = 5
# Lower is better: mean absolute error of predicted repeat purchase days over a held-out period.
HOLDOUT_METRIC = "holdout_mae_repeat_purchases"
DEFAULT_MONTHLY_DISCOUNT_RATE = 0.01  # ~12.7% a year
DAYS_PER_UNIT = {"D": 1.0, "W": 7.0}
# lifetimes' month conversion factors, kept so CLV numbers are comparable with it.
PERIODS_PER_MONTH = {"D": 30.0, "W": 4.345}


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float


def rfm_summary(
    transactions: pd.DataFrame,
    customer_col: str,
    date_col: str,
    amount_col: str | None,
    calibration_end,
    observation_end=None,
    freq: str = "D",
) -> pd.DataFrame:
    """Per-customer frequency, recency, T, monetary_value (+ holdout counts) from orders.

    Purchases are first collapsed to purchase days (several orders on one day are one
    purchase of their summed amount), then measured in ``freq`` units ("D" days, "W" weeks
    of 7 days) as differences of calendar days, which is how the CDNOW data of Fader, Hardie
    & Lee was built (T = 38.86 weeks for a first purchase on 1997-01-01, calibration ending
    1997-09-30). ``calibration_end`` and ``observation_end`` are inclusive dates.
    Customers whose first purchase is after ``calibration_end`` are left out.
    """
    import pandas as pd

    if freq not in DAYS_PER_UNIT:
        raise ValueError(f"freq must be one of {sorted(DAYS_PER_UNIT)}, got {freq!r}")
    unit = DAYS_PER_UNIT[freq]
    calibration_end = pd.Timestamp(calibration_end).normalize()
    observation_end = None if observation_end is None else pd.Timestamp(observation_end).normalize()

    when = pd.to_datetime(transactions[date_col])
    if when.dt.tz is not None:
        when = when.dt.tz_localize(None)  # keep local calendar days
    days = pd.DataFrame(
        {
            "customer": transactions[customer_col].to_numpy(),
            "day": when.dt.normalize().to_numpy(),
            "amount": transactions[amount_col].to_numpy(dtype=float) if amount_col else 0.0,
        }
    )
    days = days.groupby(["customer", "day"], as_index=False, sort=True)["amount"].sum()

    calibration = days[days["day"] <= calibration_end]
    first = calibration.groupby("customer")["day"].transform("min")
    repeat = calibration[calibration["day"] > first]
    per_customer = calibration.groupby("customer").agg(first=("day", "min"), last=("day", "max"))
    repeats = repeat.groupby("customer")["amount"].agg(["size", "mean"])

    summary = pd.DataFrame(index=per_customer.index)
    summary.index.name = customer_col
    summary["frequency"] = repeats["size"].reindex(summary.index, fill_value=0).astype("int64")
    summary["recency"] = (per_customer["last"] - per_customer["first"]).dt.days / unit
    summary["T"] = (calibration_end - per_customer["first"]).dt.days / unit
    summary["monetary_value"] = repeats["mean"].reindex(summary.index, fill_value=0.0)

    if observation_end is not None:
        holdout = days[(days["day"] > calibration_end) & (days["day"] <= observation_end)]
        counts = holdout.groupby("customer").size()
        summary["frequency_holdout"] = counts.reindex(summary.index, fill_value=0).astype("int64")
        summary["duration_holdout"] = (observation_end - calibration_end).days / unit
    return summary


def _as_arrays(*columns):
    return [np.asarray(c, dtype=float) for c in columns]


def _unique_rows(**columns) -> tuple[pd.DataFrame, np.ndarray]:
    """Distinct rows of the given columns and how many times each occurs (hash-based)."""
    import pandas as pd

    counted = pd.DataFrame(columns).value_counts(sort=False).reset_index()
    return counted.drop(columns="count"), counted["count"].to_numpy(dtype=float)


def _bgnbd_log_likelihood(r, alpha, a, b, x, t_x, T):
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6)."""
    from scipy import special

    common = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
    )
    stay = -(r + x) * np.log(alpha + T)
    repeaters = x > 0
    # The drop-out term only exists after a repeat purchase; b + x - 1 < 0 is possible at x = 0.
    drop = np.full_like(x, -np.inf)
    drop[repeaters] = (
        np.log(a) - np.log(b + x[repeaters] - 1) - (r + x[repeaters]) * np.log(alpha + t_x[repeaters])
    )
    return common + np.logaddexp(stay, drop)


class _BGNBDObjective:
    """Mean negative log-likelihood and its gradient in log-parameters.

    Rows are unique (x, t_x, T) triples with counts. Terms that depend on x alone, or on T or
    t_x alone, are computed once per distinct value and gathered, so an evaluation on a
    million customers costs a few vector operations; the analytic gradient keeps L-BFGS-B
    to a few dozen evaluations.
    """

    def __init__(self, x, t_x, T, weight):
        self.weight = weight / weight.sum()
        self.x = x
        self.repeater = x > 0
        self.ux, self.xi = np.unique(x, return_inverse=True)
        self.uT, self.Ti = np.unique(T, return_inverse=True)
        self.ut, self.ti = np.unique(t_x, return_inverse=True)

    def __call__(self, log_params):
        from scipy import special

        r, alpha, a, b = np.exp(log_params)
        ux, xi, x, rep, w = self.ux, self.xi, self.x, self.repeater, self.weight
        psi_abx = special.digamma(a + b + ux)
        common = (
            special.gammaln(r + ux)
            - special.gammaln(r)
            + r * np.log(alpha)
            + special.betaln(a, b + ux)
            - special.betaln(a, b)
        )[xi]
        d_common = [
            (special.digamma(r + ux) - special.digamma(r) + np.log(alpha))[xi],
            np.full_like(x, r / alpha),
            (special.digamma(a + b) - psi_abx)[xi],
            (special.digamma(b + ux) - psi_abx - special.digamma(b) + special.digamma(a + b))[xi],
        ]
        r_x = r + x
        log_alpha_T = np.log(alpha + self.uT)[self.Ti]
        log_alpha_tx = np.log(alpha + self.ut)[self.ti]
        stay = -r_x * log_alpha_T
        with np.errstate(invalid="ignore", divide="ignore"):
            b_x_1 = np.where(rep, b + x - 1, 1.0)  # unused at x = 0, where it may be <= 0
            drop = np.where(rep, np.log(a) - np.log(b_x_1) - r_x * log_alpha_tx, -np.inf)
        total = np.logaddexp(stay, drop)
        w_stay, w_drop = np.exp(stay - total), np.exp(drop - total)
        gradient = (
            np.array(
                [
                    d_common[0] - w_stay * log_alpha_T - w_drop * np.where(rep, log_alpha_tx, 0.0),
                    d_common[1] - w_stay * r_x / np.exp(log_alpha_T) - w_drop * r_x / np.exp(log_alpha_tx),
                    d_common[2] + w_drop / a,
                    d_common[3] - w_drop / b_x_1,
                ]
            )
            @ w
        )
        value = -np.dot(w, common + total)
        # Chain rule for log-parameters: d/d(log theta) = theta * d/d(theta).
        return value, -gradient * np.array([r, alpha, a, b])


def fit_bgnbd(frequency, recency, T, initial: BGNBDParams | None = None) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters, no penaliser (so published fits reproduce)."""
    from scipy import optimize

    x, t_x, big_t = _as_arrays(frequency, recency, T)
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > big_t + 1e-9):
        raise ValueError("need frequency >= 0 and 0 <= recency <= T")
    triples, weight = _unique_rows(x=x, t_x=t_x, T=big_t)
    # Times are rescaled so alpha starts near 1 whatever the unit (days or weeks).
    scale = 10.0 / big_t.max()
    objective = _BGNBDObjective(
        triples["x"].to_numpy(), triples["t_x"].to_numpy() * scale, triples["T"].to_numpy() * scale, weight
    )
    start = (
        np.zeros(4) if initial is None else np.log([initial.r, initial.alpha * scale, initial.a, initial.b])
    )
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-12, 12)] * 4,
        options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 1000},
    )
    if not np.isfinite(result.fun):
        raise RuntimeError(f"BG/NBD fit failed: {result.message}")
    r, alpha, a, b = np.exp(result.x)
    return BGNBDParams(r=float(r), alpha=float(alpha / scale), a=float(a), b=float(b))


def bgnbd_log_likelihood(params: BGNBDParams, frequency, recency, T) -> float:
    """Total log-likelihood of customers under ``params`` (for comparisons and tests)."""
    x, t_x, big_t = _as_arrays(frequency, recency, T)
    return float(_bgnbd_log_likelihood(params.r, params.alpha, params.a, params.b, x, t_x, big_t).sum())


def _log_death_odds(params: BGNBDParams, x, t_x, T):
    """log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) for repeaters, -inf otherwise."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    out = np.full_like(x, -np.inf)
    rep = x > 0
    out[rep] = (
        np.log(a)
        - np.log(b + x[rep] - 1)
        + (r + x[rep]) * (np.log(alpha + T[rep]) - np.log(alpha + t_x[rep]))
    )
    return out


def p_alive(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """P(still active at T | x, t_x, T). Exactly 1 at x = 0: BG/NBD drop-out follows a purchase."""
    from scipy import special

    x, t_x, big_t = _as_arrays(frequency, recency, T)
    return special.expit(-_log_death_odds(params, x, t_x, big_t))


def expected_purchases(params: BGNBDParams, t, frequency, recency, T) -> np.ndarray:
    """E[purchases in (T, T+t] | x, t_x, T] (FHL 2005, eq. 10)."""
    from scipy import special

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, big_t = _as_arrays(frequency, recency, T)
    t = np.asarray(t, dtype=float)
    hyper = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + big_t + t))
    bracket = 1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * hyper
    return (a + b + x - 1) / (a - 1) * bracket * p_alive(params, x, t_x, big_t)


def expected_purchases_new(params: BGNBDParams, t) -> np.ndarray:
    """E[repeat purchases in (0, t]] for a customer just acquired (FHL 2005, eq. 9)."""
    from scipy import special

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=float)
    hyper = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyper)


def expected_days_to_next_purchase(
    params: BGNBDParams,
    frequency,
    recency,
    T,
    days_per_period: float = 1.0,
    cap_days: float = 365.0,
) -> np.ndarray:
    """Median days from T until the next purchase, counting a dead customer as never buying.

    Given alive at T, the rate is Gamma(r+x, alpha+T) and the wait is exponential, so
    P(next purchase by T+w) = p_alive * (1 - ((alpha+T)/(alpha+T+w))^(r+x)). We return the w
    where that reaches 1/2; when p_alive <= 1/2 it never does and we return ``cap_days``,
    as for any median beyond the cap. A median rather than a mean because the mean wait is
    infinite whenever r + x <= 1, i.e. for most one-time buyers.
    """
    r, alpha = params.r, params.alpha
    x, t_x, big_t = _as_arrays(frequency, recency, T)
    alive = p_alive(params, x, t_x, big_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        survival_at_median = 1 - 0.5 / alive
        wait = (alpha + big_t) * (survival_at_median ** (-1 / (r + x)) - 1) * days_per_period
    wait = np.where(alive > 0.5, wait, np.inf)
    return np.minimum(np.nan_to_num(wait, nan=cap_days, posinf=cap_days), cap_days)


def simulate_bgnbd_summary(
    params: BGNBDParams, n_customers: int, max_T: float, seed: int = 0, resolution: float | None = None
) -> pd.DataFrame:
    """Draw (frequency, recency, T) from the BG/NBD process, T uniform on (0, max_T].

    ``resolution`` rounds times down to a grid (e.g. 1/7 for days measured in weeks), as
    real summaries are built from calendar days.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    big_t = rng.uniform(0, max_T, n_customers)
    rate = rng.gamma(params.r, 1 / params.alpha, n_customers)
    drop_prob = rng.beta(params.a, params.b, n_customers)
    # Arrivals of an immortal customer in (0, T], then death after the N-th repeat purchase.
    arrivals = rng.poisson(rate * big_t)
    lifetime_purchases = rng.geometric(drop_prob)
    x = np.minimum(arrivals, lifetime_purchases)
    # Given K arrivals in (0, T], the x-th arrival time is T times a Beta(x, K - x + 1).
    t_x = np.zeros(n_customers)
    rep = x > 0
    t_x[rep] = big_t[rep] * rng.beta(x[rep], arrivals[rep] - x[rep] + 1)
    if resolution:
        big_t = np.ceil(big_t / resolution) * resolution
        t_x = np.minimum(np.floor(t_x / resolution) * resolution, big_t)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": big_t})


def _gamma_gamma_log_likelihood(p, q, v, x, m):
    """Log-density of a customer's mean spend m over x transactions (FHL 2005b, eq. 3)."""
    from scipy import special

    px = p * x
    return (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + m * x)
    )


def fit_gamma_gamma(frequency, monetary_value, initial: GammaGammaParams | None = None) -> GammaGammaParams:
    """Gamma-Gamma parameters fitted on repeaters (frequency > 0, spend > 0), no penaliser.

    ``monetary_value`` must be each customer's mean spend per *repeat* purchase day; that is
    the variant that reproduces the published CDNOW fit (see ml.cdnow).
    """
    from scipy import optimize, special

    x, m = _as_arrays(frequency, monetary_value)
    # Zero-spend repeaters (free orders) have zero Gamma density: they carry no spend signal.
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) == 0:
        raise ValueError("Gamma-Gamma needs at least one repeat customer with positive spend")
    scale = 1.0 / np.median(m)  # fit in units of the median spend: v starts near 1
    pairs, weight = _unique_rows(x=x, m=m * scale)
    weight = weight / weight.sum()
    x, m = pairs["x"].to_numpy(), pairs["m"].to_numpy()
    log_m, log_x = np.log(m), np.log(x)

    def objective(log_params):
        p, q, v = np.exp(log_params)
        px = p * x
        log_v_mx = np.log(v + m * x)
        ll = _gamma_gamma_log_likelihood(p, q, v, x, m)
        psi_pxq = special.digamma(px + q)
        gradient = (
            np.array(
                [
                    x * (psi_pxq - special.digamma(px) + log_m + log_x - log_v_mx),
                    psi_pxq - special.digamma(q) + np.log(v) - log_v_mx,
                    q / v - (px + q) / (v + m * x),
                ]
            )
            @ weight
        )
        return -np.dot(weight, ll), -gradient * np.array([p, q, v])

    start = np.zeros(3) if initial is None else np.log([initial.p, initial.q, initial.v * scale])
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-12, 12)] * 3,
        options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 1000},
    )
    if not np.isfinite(result.fun):
        raise RuntimeError(f"Gamma-Gamma fit failed: {result.message}")
    p, q, v = np.exp(result.x)
    return GammaGammaParams(p=float(p), q=float(q), v=float(v / scale))


def expected_avg_value(params: GammaGammaParams, frequency, monetary_value) -> np.ndarray:
    """E[spend per transaction | x, mean spend]; the population mean p*v/(q-1) at x = 0."""
    p, q, v = params.p, params.q, params.v
    x, m = _as_arrays(frequency, monetary_value)
    m = np.where(x > 0, m, 0.0)  # a one-time buyer's own spend is not used by the model
    return p * (v + x * m) / (p * x + q - 1)


def customer_lifetime_value(
    bgnbd: BGNBDParams,
    gamma_gamma: GammaGammaParams,
    frequency,
    recency,
    T,
    monetary_value,
    horizon_months: int = 12,
    monthly_discount_rate: float = DEFAULT_MONTHLY_DISCOUNT_RATE,
    periods_per_month: float = PERIODS_PER_MONTH["D"],
) -> np.ndarray:
    """Discounted CLV as lifetimes computes it: sum over months of that month's expected
    purchases times the expected spend, discounted by (1 + rate)^month.

    ``periods_per_month`` converts months into the summary's time unit (30 for days,
    4.345 for weeks).
    """
    x, t_x, big_t, m = _as_arrays(frequency, recency, T, monetary_value)
    value = expected_avg_value(gamma_gamma, x, m)
    months = np.arange(1, horizon_months + 1)
    cumulative = np.stack(
        [np.zeros_like(x)] + [expected_purchases(bgnbd, k * periods_per_month, x, t_x, big_t) for k in months]
    )
    monthly = np.diff(cumulative, axis=0)
    discount = (1 + monthly_discount_rate) ** -months.astype(float)
    # Month by month with elementwise operations, not `discount @ monthly` (BLAS may round a
    # customer's sum differently by their position in the array) nor `.sum(axis=0)` (pairwise
    # when the array is one customer wide): incremental scoring (orchestration/incremental_scoring.py)
    # needs a customer's CLV to be the same bits scored alone or among everyone.
    discounted = np.zeros(monthly.shape[1:])
    for month_discount, purchases in zip(discount, monthly, strict=True):
        discounted = discounted + month_discount * purchases
    return value * discounted


def clv_tier(clv: pd.Series) -> pd.Series:
    """Tier by CLV rank using TIER_SHARES (ties broken by order, so shares are exact)."""
    import pandas as pd

    names = [name for name, _ in TIER_SHARES]
    upper_bounds = np.cumsum([share for _, share in TIER_SHARES])
    upper_bounds[-1] = 1.0
    rank_share = clv.rank(method="first", ascending=False).to_numpy() / max(len(clv), 1)
    codes = np.searchsorted(upper_bounds, rank_share - 1e-12)
    codes = np.minimum(codes, len(names) - 1)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=names, ordered=True), index=clv.index, name="clv_tier"
    )


class _CLVModel:
    """Fitted BG/NBD + Gamma-Gamma parameters only (no customer data) served as pyfunc.

    Input columns: frequency, recency, T, monetary_value, in the unit the model was fitted in.
    """

    INPUT_COLUMNS = ("frequency", "recency", "T", "monetary_value")

    def __init__(
        self,
        bgnbd: BGNBDParams,
        gamma_gamma: GammaGammaParams,
        horizon_months: int = 12,
        monthly_discount_rate: float = DEFAULT_MONTHLY_DISCOUNT_RATE,
        periods_per_month: float = PERIODS_PER_MONTH["D"],
    ):
        self.bgnbd = bgnbd
        self.gamma_gamma = gamma_gamma
        self.horizon_months = horizon_months
        self.monthly_discount_rate = monthly_discount_rate
        self.periods_per_month = periods_per_month

    def params_dict(self) -> dict:
        """Everything the model holds, for mlflow.log_params."""
        return {
            **asdict(self.bgnbd),
            **asdict(self.gamma_gamma),
            "horizon_months": self.horizon_months,
            "monthly_discount_rate": self.monthly_discount_rate,
            "periods_per_month": self.periods_per_month,
        }

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        import pandas as pd

        missing = [c for c in self.INPUT_COLUMNS if c not in model_input.columns]
        if missing:
            raise ValueError(f"missing input columns: {missing}")
        x, t_x, big_t, m = (model_input[c].to_numpy(dtype=float) for c in self.INPUT_COLUMNS)
        horizon_periods = self.horizon_months * self.periods_per_month
        return pd.DataFrame(
            {
                "p_alive": p_alive(self.bgnbd, x, t_x, big_t),
                "expected_purchases": expected_purchases(self.bgnbd, horizon_periods, x, t_x, big_t),
                "expected_avg_value": expected_avg_value(self.gamma_gamma, x, m),
                "clv": customer_lifetime_value(
                    self.bgnbd,
                    self.gamma_gamma,
                    x,
                    t_x,
                    big_t,
                    m,
                    self.horizon_months,
                    self.monthly_discount_rate,
                    self.periods_per_month,
                ),
            },
            index=model_input.index,
        )


def _CLVModel_class() -> type:
    """``CLVModel``: ``_CLVModel`` on MLflow's base class, built on first use (import cost, ml/pyfunc.py)."""
    return lazy_subclass(globals(), "CLVModel", _CLVModel, python_model)


def __getattr__(attr: str) -> type:
    if attr == "CLVModel":
        return _CLVModel_class()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def too_little_to_fit(summary: pd.DataFrame) -> str | None:
    """Why ``summary`` cannot support a fit, or None when it can."""
    repeaters = int((summary["frequency"] > 0).sum()) if len(summary) else 0
    if len(summary) < MIN_CUSTOMERS or repeaters < MIN_REPEAT_CUSTOMERS:
        return (
            f"{len(summary)} customers with a purchase, {repeaters} with a repeat purchase day: "
            f"BG/NBD needs at least {MIN_CUSTOMERS} and {MIN_REPEAT_CUSTOMERS}"
        )
    return None


def fit_summary(summary: pd.DataFrame) -> tuple[BGNBDParams, GammaGammaParams]:
    """BG/NBD and Gamma-Gamma fitted on a per-customer summary (frequency, recency_days, t_days,
    monetary_value; days as the time unit)."""
    bgnbd = fit_bgnbd(summary["frequency"], summary["recency_days"], summary["t_days"])
    gamma_gamma = fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    return bgnbd, gamma_gamma


def score_customers(
    summary: pd.DataFrame,
    bgnbd: BGNBDParams,
    gamma_gamma: GammaGammaParams,
    horizon_months: int,
    monthly_discount_rate: float,
) -> pd.DataFrame:
    """The summary with p_alive, expected purchases over the horizon, expected average value,
    discounted CLV, tier and expected days to the next purchase (days as the time unit)."""
    x, t_x, big_t, m = (summary[c] for c in ("frequency", "recency_days", "t_days", "monetary_value"))
    days_per_month = PERIODS_PER_MONTH["D"]
    scored = summary.copy()
    scored["p_alive"] = p_alive(bgnbd, x, t_x, big_t)
    scored["expected_purchases"] = expected_purchases(bgnbd, horizon_months * days_per_month, x, t_x, big_t)
    scored["expected_avg_value"] = expected_avg_value(gamma_gamma, x, m)
    scored["clv"] = np.maximum(
        customer_lifetime_value(
            bgnbd, gamma_gamma, x, t_x, big_t, m, horizon_months, monthly_discount_rate, days_per_month
        ),
        0.0,  # guards against -0.0 / rounding below zero; the formula itself is non-negative
    )
    scored["clv_tier"] = clv_tier(scored["clv"]).astype(str)
    scored["expected_days_to_next_purchase"] = expected_days_to_next_purchase(bgnbd, x, t_x, big_t)
    return scored


def holdout_error(calibration: pd.DataFrame, holdout_purchases: pd.Series, holdout_days: int) -> dict:
    """The promotion metric: BG/NBD refitted on the ``calibration`` summary (purchases before the
    holdout) predicts each of its customers' repeat purchase days in the next ``holdout_days``;
    ``holdout_mae_repeat_purchases`` is the mean absolute error against ``holdout_purchases``
    (per customer id; absent = 0). NaN when the calibration data is too small to fit."""
    if too_little_to_fit(calibration):
        return {HOLDOUT_METRIC: float("nan"), "holdout_customers": len(calibration)}
    actual = holdout_purchases.reindex(calibration["customer_id"], fill_value=0).to_numpy(dtype=float)
    bgnbd = fit_bgnbd(calibration["frequency"], calibration["recency_days"], calibration["t_days"])
    predicted = expected_purchases(
        bgnbd, holdout_days, calibration["frequency"], calibration["recency_days"], calibration["t_days"]
    )
    return {
        HOLDOUT_METRIC: float(np.mean(np.abs(predicted - actual))),
        "holdout_customers": len(calibration),
        "holdout_predicted_repeat": float(predicted.sum()),
        "holdout_actual_repeat": float(actual.sum()),
    }


def model_example() -> pd.DataFrame:
    """Synthetic customers (days) as the logged model's input example: no one's data in artifacts."""
    import pandas as pd

    return pd.DataFrame(
        {
            "frequency": [0.0, 2.0, 8.0],
            "recency": [0.0, 120.0, 400.0],
            "T": [60.0, 365.0, 420.0],
            "monetary_value": [0.0, 45.0, 80.0],
        }
    )


def log_clv_model(model: _CLVModel, name: str = "model"):
    """Log ``model`` to the active MLflow run with its signature and an input example."""
    import importlib.metadata

    import mlflow.pyfunc
    from mlflow.models import infer_signature

    example = model_example()
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=model,
        signature=infer_signature(example, model.predict(None, example)),
        input_example=example,
        # Explicit requirements: inference would load the model in a subprocess (slow).
        pip_requirements=[
            f"{p}=={importlib.metadata.version(p)}" for p in ("mlflow", "numpy", "pandas", "scipy")
        ],
    )
