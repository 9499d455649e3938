"""Weekly demand forecast per product category, with a rolling-origin backtest.

Input is a long table (category, week_start, units), built in SQL. Weeks missing inside a
category's range are taken as zero sales.

The model, ``seasonal_ridge``, is one weighted ridge regression per category on: a linear
trend, calendar Fourier terms of the annual cycle, flags for the weeks holding Singles' Day
(11-11), the 618 sale (06-18) and Chinese New Year, and the units of the same week a season
ago. Why this rather than Holt-Winters or gradient boosting: with two or three years of
weekly history per category there are too few seasons to initialise a 52-period
Holt-Winters well or to give trees enough examples of each holiday, whereas a regression
forecasts every horizon directly (no recursion), extrapolates the trend, moves CNY with the
lunar calendar, and is fitted in closed form. Recent weeks weigh more, so the trend follows
the latest years. With two seasons of history the ridge also uses the same week a season ago;
with at least ``MIN_WEEKS_FOR_RIDGE`` weeks (a season plus a quarter) it fits on the calendar
terms alone; shorter series fall back to ``seasonal_naive``.

``level_adjusted_naive`` is seasonal-naive scaled by how the latest weeks compare with the same
weeks a season earlier: the simplest model that follows growth.

``forecast`` chooses per category, by a backtest on the category's own most recent weeks
(up to ``SELECTION_FOLDS`` windows of the horizon, never the weeks being forecast), among
seasonal-naive, the level-adjusted naive and the ridge (``choose_model``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

SEASON = 52
FOURIER_TERMS = 6
RIDGE_PENALTY = 1.0
HALF_LIFE_WEEKS = 104
MIN_WEEKS_FOR_RIDGE = SEASON + 13  # the ridge on calendar terms only
LEVEL_WEEKS = 8  # recent weeks compared with a season earlier by level_adjusted_naive
MIN_LEVEL_WEEKS = 4
LEVEL_RATIO_BOUNDS = (0.5, 2.0)  # a few odd weeks must not double or halve a whole season
SELECTION_FOLDS = 2
INTERVAL_LEVEL = 0.9
FORECAST_COLUMNS = ["category", "week_start", "units_forecast", "lower", "upper"]

# Chinese New Year (first day of the lunar year); weeks outside this range get no CNY flag.
CHINESE_NEW_YEAR = pd.to_datetime(
    [
        "2015-02-19", "2016-02-08", "2017-01-28", "2018-02-16", "2019-02-05", "2020-01-25",
        "2021-02-12", "2022-02-01", "2023-01-22", "2024-02-10", "2025-01-29", "2026-02-17",
        "2027-02-06", "2028-01-26", "2029-02-13", "2030-02-03", "2031-01-23", "2032-02-11",
        "2033-01-31", "2034-02-19", "2035-02-08",
    ]
)  # fmt: skip

ModelFn = Callable[[pd.DataFrame, int], pd.DataFrame]
OneSeriesFn = Callable[[str, pd.Series, int, int, float], pd.DataFrame]


def _complete_weeks(history: pd.DataFrame) -> dict[str, pd.Series]:
    """Per category, units indexed by every week from its first to its last (gaps = 0)."""
    series = {}
    for category, rows in history.groupby("category", sort=True):
        units = rows.groupby(pd.to_datetime(rows["week_start"]))["units"].sum().sort_index()
        weeks = pd.date_range(units.index[0], units.index[-1], freq="7D")
        if len(weeks) and weeks[-1] != units.index[-1]:
            raise ValueError(f"category {category!r}: week_start values are not 7 days apart")
        series[category] = units.reindex(weeks, fill_value=0.0).astype(float)
    return series


def _future_weeks(last_week: pd.Timestamp, horizon: int) -> pd.DatetimeIndex:
    return pd.date_range(last_week + pd.Timedelta(days=7), periods=horizon, freq="7D")


def _frame(category, weeks, point, spread) -> pd.DataFrame:
    point = np.maximum(point, 0.0)
    return pd.DataFrame(
        {
            "category": category,
            "week_start": weeks,
            "units_forecast": point,
            "lower": np.maximum(point - spread, 0.0),
            "upper": point + spread,
        }
    )


def _empty_forecast() -> pd.DataFrame:
    return pd.DataFrame(columns=FORECAST_COLUMNS)


def _seasonal_naive_one(category, units: pd.Series, horizon, season, level) -> pd.DataFrame:
    y = units.to_numpy()
    lag = season if len(y) >= season else 1
    steps = np.arange(horizon)
    point = y[len(y) - lag + steps % lag]
    errors = y[lag:] - y[:-lag]
    z = stats.norm.ppf(0.5 + level / 2)
    spread = z * (errors.std() if len(errors) > 1 else 0.0) * np.ones(horizon)
    return _frame(category, _future_weeks(units.index[-1], horizon), point, spread)


def seasonal_naive(
    history: pd.DataFrame, horizon: int = 8, season: int = SEASON, level: float = INTERVAL_LEVEL
) -> pd.DataFrame:
    """Units of the same week one season ago; last value when history is under a season."""
    frames = [
        _seasonal_naive_one(c, units, horizon, season, level) for c, units in _complete_weeks(history).items()
    ]
    return pd.concat(frames, ignore_index=True) if frames else _empty_forecast()


def holiday_flags(weeks: pd.DatetimeIndex) -> pd.DataFrame:
    """1 for weeks [week_start, week_start + 7 days) holding each sales event."""
    weeks = pd.DatetimeIndex(weeks)
    week_end = weeks + pd.Timedelta(days=7)

    def holds(dates: pd.DatetimeIndex) -> np.ndarray:
        return np.array([((dates >= s) & (dates < e)).any() for s, e in zip(weeks, week_end)], dtype=float)

    years = range(weeks.year.min() - 1, weeks.year.max() + 2) if len(weeks) else range(0)
    return pd.DataFrame(
        {
            "singles_day": holds(pd.to_datetime([f"{y}-11-11" for y in years])),
            "mid_year_618": holds(pd.to_datetime([f"{y}-06-18" for y in years])),
            "chinese_new_year": holds(CHINESE_NEW_YEAR),
        },
        index=weeks,
    )


def _calendar_features(weeks: pd.DatetimeIndex, origin: pd.Timestamp) -> np.ndarray:
    # Fourier terms on the day of the year, not on the row number, so 53-week years stay aligned.
    year_fraction = (weeks.day_of_year.to_numpy() - 1) / 365.25
    harmonics = np.arange(1, FOURIER_TERMS + 1)
    angle = 2 * np.pi * np.outer(year_fraction, harmonics)
    trend = ((weeks - origin).days.to_numpy() / 365.25)[:, None]
    return np.hstack([trend, np.sin(angle), np.cos(angle), holiday_flags(weeks).to_numpy()])


def _weighted_ridge(features, target, weights, penalty):
    """Closed-form ridge on standardised features with an unpenalised intercept."""
    mean = np.average(features, axis=0, weights=weights)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    z = (features - mean) / scale
    y_mean = np.average(target, weights=weights)
    gram = z.T @ (z * weights[:, None]) + penalty * np.eye(z.shape[1])
    beta = np.linalg.solve(gram, z.T @ (weights * (target - y_mean)))

    def predict(new_features):
        return y_mean + ((new_features - mean) / scale) @ beta

    return predict


def _seasonal_ridge_one(category, units: pd.Series, horizon, season, level) -> pd.DataFrame:
    y = units.to_numpy()
    n = len(y)
    weeks = units.index
    future = _future_weeks(weeks[-1], horizon)
    # Beyond a season the lag would need our own forecasts; under two seasons it would leave
    # less than a season of training rows.
    use_lag = horizon <= season and n >= 2 * season
    rows = np.arange(season if use_lag else 0, n)

    def design(week_index, row_numbers):
        calendar = _calendar_features(week_index, weeks[0])
        if not use_lag:
            return calendar
        return np.hstack([calendar, y[row_numbers - season][:, None]])

    features = design(weeks[rows], rows)
    weights = 0.5 ** ((n - 1 - rows) / HALF_LIFE_WEEKS)
    predict = _weighted_ridge(features, y[rows], weights, RIDGE_PENALTY)
    residuals = y[rows] - predict(features)
    # Inflate the in-sample error for the parameters spent; ignores parameter uncertainty.
    dof = max(len(rows) - features.shape[1] - 1, 1)
    sigma = np.sqrt(np.average(residuals**2, weights=weights) * len(rows) / dof)
    point = predict(design(future, np.arange(n, n + horizon)))
    spread = stats.norm.ppf(0.5 + level / 2) * sigma * np.ones(horizon)
    return _frame(category, future, point, spread)


def seasonal_ridge(
    history: pd.DataFrame, horizon: int = 8, season: int = SEASON, level: float = INTERVAL_LEVEL
) -> pd.DataFrame:
    """Per-category ridge forecast (see module docstring); seasonal-naive on short series."""
    return _per_category(history, _ridge_or_naive_one, horizon, season, level)


def _ridge_or_naive_one(category, units: pd.Series, horizon, season, level) -> pd.DataFrame:
    if len(units) < MIN_WEEKS_FOR_RIDGE:
        return _seasonal_naive_one(category, units, horizon, season, level)
    return _seasonal_ridge_one(category, units, horizon, season, level)


def _level_adjusted_one(category, units: pd.Series, horizon, season, level) -> pd.DataFrame:
    y = units.to_numpy()
    recent = min(LEVEL_WEEKS, len(y) - season)
    if recent < MIN_LEVEL_WEEKS:
        return _seasonal_naive_one(category, units, horizon, season, level)
    now, year_ago = y[-recent:].sum(), y[-recent - season : -season].sum()
    ratio = float(np.clip(now / year_ago, *LEVEL_RATIO_BOUNDS)) if year_ago > 0 else 1.0
    naive = _seasonal_naive_one(category, units, horizon, season, level)
    spread = (naive["upper"] - naive["units_forecast"]).to_numpy()
    return _frame(category, naive["week_start"], ratio * naive["units_forecast"].to_numpy(), ratio * spread)


def level_adjusted_naive(
    history: pd.DataFrame, horizon: int = 8, season: int = SEASON, level: float = INTERVAL_LEVEL
) -> pd.DataFrame:
    """Seasonal-naive times (last ``LEVEL_WEEKS`` weeks / the same weeks a season earlier)."""
    return _per_category(history, _level_adjusted_one, horizon, season, level)


def _per_category(history, one: OneSeriesFn, horizon, season, level) -> pd.DataFrame:
    frames = [one(c, units, horizon, season, level) for c, units in _complete_weeks(history).items()]
    return pd.concat(frames, ignore_index=True) if frames else _empty_forecast()


CANDIDATES: dict[str, OneSeriesFn] = {
    "seasonal_naive": _seasonal_naive_one,
    "level_adjusted_naive": _level_adjusted_one,
    "seasonal_ridge": _ridge_or_naive_one,
}


def choose_model(
    units: pd.Series, horizon: int = 8, season: int = SEASON, folds: int = SELECTION_FOLDS
) -> str:
    """The candidate with the lowest absolute error over the last windows of ``horizon`` weeks of
    ``units`` (up to ``folds``, as many as leave a season and ``MIN_LEVEL_WEEKS`` to train on),
    each forecast from the weeks before it; seasonal-naive keeps ties. Too short to hold out a
    window: the level-adjusted naive when there is a season and ``MIN_LEVEL_WEEKS`` of history,
    else seasonal-naive."""
    usable = min(folds, (len(units) - season - MIN_LEVEL_WEEKS) // horizon)
    if usable < 1:
        return "level_adjusted_naive" if len(units) >= season + MIN_LEVEL_WEEKS else "seasonal_naive"
    errors = dict.fromkeys(CANDIDATES, 0.0)
    for fold in range(usable):
        cut = len(units) - (usable - fold) * horizon
        train, actual = units.iloc[:cut], units.iloc[cut : cut + horizon].to_numpy()
        for name, one in CANDIDATES.items():
            guess = one("_", train, horizon, season, INTERVAL_LEVEL)["units_forecast"].to_numpy()
            errors[name] += float(np.abs(actual - guess).sum())
    return min(errors, key=lambda name: (errors[name], name != "seasonal_naive"))


def chosen_models(history: pd.DataFrame, horizon: int = 8, season: int = SEASON) -> dict[str, str]:
    """Per category, the model ``forecast`` uses (``choose_model``)."""
    return {c: choose_model(units, horizon, season) for c, units in _complete_weeks(history).items()}


def _chosen_one(category, units: pd.Series, horizon, season, level) -> pd.DataFrame:
    return CANDIDATES[choose_model(units, horizon, season)](category, units, horizon, season, level)


def forecast(history: pd.DataFrame, horizon: int = 8) -> pd.DataFrame:
    """Next ``horizon`` weeks per category: category, week_start, units_forecast, lower, upper,
    each category from the model its own recent backtest chose (``choose_model``)."""
    return _per_category(history, _chosen_one, horizon, SEASON, INTERVAL_LEVEL)


def _mase_scale(train: np.ndarray, season: int) -> float:
    lag = season if len(train) > season else 1
    scale = np.mean(np.abs(train[lag:] - train[:-lag])) if len(train) > lag else np.nan
    return scale if scale > 0 else np.nan


def rolling_backtest(
    history: pd.DataFrame, model_fn: ModelFn, horizon: int = 8, folds: int = 4, season: int = SEASON
) -> dict:
    """Rolling-origin evaluation: ``folds`` consecutive, non-overlapping test windows of
    ``horizon`` weeks at the end of the history; each fold's model sees only weeks before
    its window. MASE is scaled by the in-sample seasonal-naive error of that fold's
    training data; MAPE (in %) skips weeks with zero actual units; WAPE (in %) is the absolute
    error over the actual units, summed over weeks (and folds, categories for the totals).

    Returns {"mase", "mape"} averaged over folds and categories, "wape" over everything,
    "folds", one row per (fold, category), and "categories", one row per category.
    """
    history = history.assign(week_start=pd.to_datetime(history["week_start"]))
    weeks = np.sort(history["week_start"].unique())
    if len(weeks) <= folds * horizon:
        raise ValueError(f"need more than {folds * horizon} weeks of history, got {len(weeks)}")
    rows = []
    for fold in range(folds):
        test_start = len(weeks) - (folds - fold) * horizon
        test_weeks = weeks[test_start : test_start + horizon]
        train = history[history["week_start"] < test_weeks[0]]
        predicted = model_fn(train, horizon)
        actual = _complete_weeks(history)
        train_series = _complete_weeks(train)
        for category, units in actual.items():
            if category not in train_series:
                continue
            truth = units.reindex(pd.DatetimeIndex(test_weeks), fill_value=0.0)
            guess = (
                predicted[predicted["category"] == category]
                .set_index("week_start")["units_forecast"]
                .reindex(truth.index)
                .to_numpy(dtype=float)
            )
            errors = np.abs(truth.to_numpy() - guess)
            positive = truth.to_numpy() > 0
            rows.append(
                {
                    "fold": fold,
                    "category": category,
                    "test_start": pd.Timestamp(test_weeks[0]),
                    "mae": float(errors.mean()),
                    "abs_error": float(errors.sum()),
                    "actual_units": float(truth.sum()),
                    "mase": float(errors.mean() / _mase_scale(train_series[category].to_numpy(), season)),
                    "mape": float(100 * np.mean(errors[positive] / truth.to_numpy()[positive]))
                    if positive.any()
                    else np.nan,
                }
            )
    table = pd.DataFrame(rows)
    by_category = table.groupby("category").agg(
        mase=("mase", "mean"),
        mape=("mape", "mean"),
        abs_error=("abs_error", "sum"),
        actual_units=("actual_units", "sum"),
    )
    by_category["wape"] = 100 * by_category["abs_error"] / by_category["actual_units"]
    return {
        "mase": float(table["mase"].mean()),
        "mape": float(table["mape"].mean()),
        "wape": float(100 * table["abs_error"].sum() / table["actual_units"].sum()),
        "folds": table,
        "categories": by_category[["mase", "wape", "mape"]].reset_index(),
    }


def compare_models(
    history: pd.DataFrame,
    models: dict[str, ModelFn] | None = None,
    horizon: int = 8,
    folds: int = 4,
) -> pd.DataFrame:
    """MASE, WAPE and MAPE per model from the same rolling backtest, best MASE first."""
    return backtest_report(history, models, horizon, folds)["overall"]


DEFAULT_MODELS: dict[str, ModelFn] = {
    "seasonal_naive": seasonal_naive,
    "level_adjusted_naive": level_adjusted_naive,
    "seasonal_ridge": seasonal_ridge,
    "forecast": forecast,
}


def backtest_report(
    history: pd.DataFrame, models: dict[str, ModelFn] | None = None, horizon: int = 8, folds: int = 4
) -> dict[str, pd.DataFrame]:
    """The rolling backtest of each model: ``overall`` (model -> mase, wape, mape; best MASE
    first) and ``categories`` (category, model, mase, wape, mape)."""
    models = models or DEFAULT_MODELS
    results = {name: rolling_backtest(history, fn, horizon, folds) for name, fn in models.items()}
    overall = pd.DataFrame(
        {name: {"mase": r["mase"], "wape": r["wape"], "mape": r["mape"]} for name, r in results.items()}
    ).T
    categories = pd.concat(
        [r["categories"].assign(model=name) for name, r in results.items()], ignore_index=True
    )[["category", "model", "mase", "wape", "mape"]]
    return {"overall": overall.rename_axis("model").sort_values("mase"), "categories": categories}


def plot_forecast(
    history: pd.DataFrame, forecast: pd.DataFrame, weeks_shown: int = 2 * SEASON, max_categories: int = 12
) -> Figure:
    """One panel per category: recent history, the forecast and its interval band."""
    categories = sorted(forecast["category"].unique())[:max_categories]
    columns = min(3, max(len(categories), 1))
    grid_rows = max(1, -(-len(categories) // columns))
    figure = Figure(figsize=(5 * columns, 3 * grid_rows), layout="constrained")
    axes = figure.subplots(grid_rows, columns, squeeze=False).ravel()
    series = _complete_weeks(history)
    for ax, category in zip(axes, categories):
        past = series.get(category, pd.Series(dtype=float)).iloc[-weeks_shown:]
        ahead = forecast[forecast["category"] == category].sort_values("week_start")
        ax.plot(past.index, past.to_numpy(), color="0.3", label="actual")
        ax.plot(ahead["week_start"], ahead["units_forecast"], color="tab:blue", label="forecast")
        ax.fill_between(ahead["week_start"], ahead["lower"], ahead["upper"], color="tab:blue", alpha=0.2)
        ax.set_title(str(category))
        ax.tick_params(axis="x", labelrotation=30)
    for ax in axes[len(categories) :]:
        ax.set_visible(False)
    if categories:
        axes[0].legend(loc="upper left")
    return figure


def synthetic_demand(
    categories: int = 3, weeks: int = 156, start: str = "2022-01-03", noise: float = 0.08, seed: int = 0
) -> pd.DataFrame:
    """Weekly units with trend, annual seasonality and holiday peaks, for tests and demos."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=weeks, freq="7D")
    flags = holiday_flags(index)
    year_fraction = (index.day_of_year.to_numpy() - 1) / 365.25
    frames = []
    for k in range(categories):
        base = 200.0 * (k + 1)
        trend = base * (1 + (0.25 + 0.1 * k) * np.arange(weeks) / SEASON)
        season = (
            1 + 0.3 * np.sin(2 * np.pi * (year_fraction + 0.1 * k)) + 0.1 * np.cos(4 * np.pi * year_fraction)
        )
        peaks = 1 + 1.5 * flags["singles_day"] + 0.8 * flags["mid_year_618"] - 0.4 * flags["chinese_new_year"]
        units = trend * season * peaks.to_numpy() * rng.lognormal(0, noise, weeks)
        frames.append(
            pd.DataFrame({"category": f"category_{k + 1}", "week_start": index, "units": units.round()})
        )
    return pd.concat(frames, ignore_index=True)
