import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from ml import forecast as fc


@pytest.fixture(scope="module")
def history():
    return fc.synthetic_demand(categories=2, weeks=156, noise=0.1, seed=1)


def test_seasonal_naive_repeats_last_season():
    weeks = pd.date_range("2023-01-02", periods=60, freq="7D")
    history = pd.DataFrame({"category": "a", "week_start": weeks, "units": np.arange(60.0)})
    result = fc.seasonal_naive(history, horizon=3)
    np.testing.assert_array_equal(result["units_forecast"], [8.0, 9.0, 10.0])
    assert result["week_start"].iloc[0] == weeks[-1] + pd.Timedelta(days=7)


def test_seasonal_naive_falls_back_to_last_value_on_short_history():
    weeks = pd.date_range("2023-01-02", periods=10, freq="7D")
    history = pd.DataFrame({"category": "a", "week_start": weeks, "units": np.arange(10.0)})
    np.testing.assert_array_equal(fc.seasonal_naive(history, horizon=4)["units_forecast"], 9.0)


def test_missing_weeks_count_as_zero_sales():
    weeks = pd.date_range("2023-01-02", periods=53, freq="7D").delete(1)
    history = pd.DataFrame({"category": "a", "week_start": weeks, "units": 5.0})
    assert fc.seasonal_naive(history, horizon=1)["units_forecast"].iloc[0] == 0.0


def test_holiday_flags_mark_the_weeks_holding_each_event():
    weeks = pd.DatetimeIndex(["2024-02-05", "2024-06-17", "2024-11-11", "2024-11-18"])
    flags = fc.holiday_flags(weeks)
    assert flags["chinese_new_year"].tolist() == [1, 0, 0, 0]  # CNY 2024-02-10
    assert flags["mid_year_618"].tolist() == [0, 1, 0, 0]
    assert flags["singles_day"].tolist() == [0, 0, 1, 0]


def test_forecast_has_one_row_per_category_and_week_with_ordered_bounds(history):
    result = fc.forecast(history, horizon=8)
    assert list(result.columns) == fc.FORECAST_COLUMNS
    assert len(result) == 16
    assert result.groupby("category").size().eq(8).all()
    assert (result["lower"] <= result["units_forecast"]).all()
    assert (result["units_forecast"] <= result["upper"]).all()
    assert (result["lower"] >= 0).all()


def test_ridge_beats_seasonal_naive_on_trending_seasonal_series(history):
    table = fc.compare_models(history)
    assert table.loc["seasonal_ridge", "mase"] < table.loc["seasonal_naive", "mase"]
    assert table.index[0] == "seasonal_ridge"


def test_backtest_models_never_see_the_weeks_they_forecast(history):
    seen = []

    def spy(train, horizon):
        seen.append(train["week_start"].max())
        return fc.seasonal_naive(train, horizon)

    result = fc.rolling_backtest(history, spy, horizon=8, folds=4)
    starts = result["folds"].groupby("fold")["test_start"].first().tolist()
    assert len(seen) == 4
    assert all(last < start for last, start in zip(seen, starts))
    assert all(start - last == pd.Timedelta(days=7) for last, start in zip(seen, starts))


@pytest.mark.parametrize("model", [fc.seasonal_ridge, fc.forecast], ids=["ridge", "chosen_per_category"])
def test_backtest_scores_do_not_change_when_future_data_is_corrupted(history, model):
    # Only the last fold's test window differs, so earlier folds must score exactly the same.
    last_window = np.sort(history["week_start"].unique())[-8]
    corrupted = history.copy()
    corrupted.loc[corrupted["week_start"] >= last_window, "units"] = 1e9
    clean = fc.rolling_backtest(history, model)["folds"]
    dirty = fc.rolling_backtest(corrupted, model)["folds"]
    early = clean["fold"] < 3
    pd.testing.assert_frame_equal(clean[early], dirty[early])


def test_backtest_needs_more_history_than_its_windows():
    history = fc.synthetic_demand(categories=1, weeks=20)
    with pytest.raises(ValueError, match="need more than 32 weeks of history, got 20"):
        fc.rolling_backtest(history, fc.seasonal_naive)


def test_plot_forecast_draws_one_panel_per_category(history):
    figure = fc.plot_forecast(history, fc.forecast(history))
    assert isinstance(figure, matplotlib.figure.Figure)
    assert sum(ax.get_visible() for ax in figure.axes) == 2


@pytest.fixture(scope="module")
def short_history():
    # Like the demo: just under two seasons, so the season-ago lag leaves too few training rows.
    return fc.synthetic_demand(categories=2, weeks=103, noise=0.08, seed=3)


def test_forecast_beats_seasonal_naive_on_trending_seasonal_series_under_two_seasons(short_history):
    report = fc.backtest_report(short_history)
    overall = report["overall"]
    assert overall.loc["forecast", "mase"] < overall.loc["seasonal_naive", "mase"]
    assert overall.loc["forecast", "wape"] < overall.loc["seasonal_naive", "wape"]
    categories = report["categories"].pivot(index="category", columns="model", values="wape")
    assert (categories["forecast"] < categories["seasonal_naive"]).all()


def test_level_adjusted_naive_scales_last_season_by_recent_growth():
    weeks = pd.date_range("2023-01-02", periods=60, freq="7D")
    units = np.r_[np.full(52, 10.0), np.full(8, 15.0)]  # the last 8 weeks sell 1.5x a season ago
    history = pd.DataFrame({"category": "a", "week_start": weeks, "units": units})
    result = fc.level_adjusted_naive(history, horizon=3)
    np.testing.assert_allclose(result["units_forecast"], 15.0)


def test_model_choice_falls_back_to_seasonal_naive_on_short_series():
    weeks = pd.date_range("2023-01-02", periods=40, freq="7D")
    units = pd.Series(np.arange(40.0), index=weeks)
    assert fc.choose_model(units, horizon=8) == "seasonal_naive"
    history = pd.DataFrame({"category": "a", "week_start": weeks, "units": units.to_numpy()})
    np.testing.assert_array_equal(fc.forecast(history, horizon=2)["units_forecast"], [39.0, 39.0])


def test_every_chosen_model_is_a_candidate(short_history):
    assert set(fc.chosen_models(short_history).values()) <= set(fc.CANDIDATES)
