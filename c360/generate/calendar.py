"""The simulated time axis: horizon, months, and the shopping-season intensity curves.

Times are int64 seconds since the Unix epoch (naive, local shop time); days are float or int
offsets from the first day of the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

DAY = 86_400
FUTURE_DAYS = 90

# Chinese New Year (Spring Festival) dates; years outside the table fall back to Feb 1.
_CNY = {
    2016: "2016-02-08",
    2017: "2017-01-28",
    2018: "2018-02-16",
    2019: "2019-02-05",
    2020: "2020-01-25",
    2021: "2021-02-12",
    2022: "2022-02-01",
    2023: "2023-01-22",
    2024: "2024-02-10",
    2025: "2025-01-29",
    2026: "2026-02-17",
    2027: "2027-02-06",
    2028: "2028-01-26",
    2029: "2029-02-13",
    2030: "2030-02-03",
    2031: "2031-01-23",
    2032: "2032-02-11",
    2033: "2033-01-31",
    2034: "2034-02-19",
    2035: "2035-02-08",
}


def epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


@dataclass(frozen=True)
class Horizon:
    """The simulated window: ``months`` whole months ending on ``end`` (inclusive)."""

    start: date
    end: date

    @classmethod
    def ending(cls, end_date: str, months: int) -> Horizon:
        end = date.fromisoformat(end_date)
        y, m = end.year, end.month - (months - 1)
        while m < 1:
            y, m = y - 1, m + 12
        return cls(date(y, m, 1), end)

    @property
    def days(self) -> int:
        """Days in the horizon, the end date included."""
        return (self.end - self.start).days + 1

    @property
    def start_s(self) -> int:
        return epoch_day(self.start) * DAY

    @property
    def end_s(self) -> int:
        """Last legit second: end date 23:59:59."""
        return (epoch_day(self.end) + 1) * DAY - 1

    def months(self) -> list[tuple[str, int, int]]:
        """(YYYY-MM, first second, last second) of every month in the horizon."""
        out, d = [], self.start
        while d <= self.end:
            nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
            last = min(nxt - timedelta(days=1), self.end)
            out.append((f"{d:%Y-%m}", epoch_day(d) * DAY, (epoch_day(last) + 1) * DAY - 1))
            d = nxt
        return out

    def day_dates(self, first: int, count: int) -> np.ndarray:
        """datetime64[D] of horizon days first .. first+count-1 (may extend past the end)."""
        return np.datetime64(self.start, "D") + np.arange(first, first + count)


def _peak(days: np.ndarray, centre: np.datetime64, before: int, after: int, height: float) -> np.ndarray:
    """A ramp up over ``before`` days to ``height`` on ``centre`` and down over ``after`` days."""
    delta = (days - centre).astype(int)
    up = np.clip(1 + delta / before, 0, 1) * (delta <= 0)
    down = np.clip(1 - delta / after, 0, 1) * (delta > 0)
    return height * (up + down) ** 2


def season_curves(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Daily (base, promo) purchase intensity multipliers for datetime64[D] ``dates``.

    base averages about 1 with a Chinese-New-Year run-up and holiday dip and a weekend lift;
    promo is near zero except around Singles' Day (11-11), 618 and the pre-CNY sales, where
    promotion-sensitive shoppers buy.
    """
    years = sorted({int(str(y)[:4]) for y in dates.astype("datetime64[Y]")} | set())
    years = list(range(years[0] - 1, years[-1] + 2))
    base = np.ones(len(dates))
    promo = np.full(len(dates), 0.02)
    weekday = (dates.astype("datetime64[D]").view("int64") + 3) % 7  # 0 = Monday
    base += 0.15 * (weekday >= 5)
    for y in years:
        cny = np.datetime64(_CNY.get(y, f"{y}-02-01"), "D")
        base += _peak(dates, cny - 7, 21, 1, 0.5)
        base -= 0.45 * ((dates >= cny) & (dates < cny + 7))
        promo += _peak(dates, cny - 10, 14, 2, 1.5)
        promo += _peak(dates, np.datetime64(f"{y}-11-11"), 10, 1, 8.0)
        promo += _peak(dates, np.datetime64(f"{y}-06-18"), 17, 1, 4.0)
    return base, promo


def promo_window(dates: np.ndarray) -> np.ndarray:
    """Index of the named promotion running on each date: 0 none, 1 Double 11, 2 618, 3 CNY."""
    out = np.zeros(len(dates), dtype=np.int8)
    md = (dates.astype("datetime64[D]") - dates.astype("datetime64[M]")).astype(int) + 1
    month = dates.astype("datetime64[M]").astype(int) % 12 + 1
    out[(month == 11) & (md <= 12)] = 1
    out[(month == 6) & (md <= 19)] = 2
    for y in np.unique(dates.astype("datetime64[Y]").astype(np.int64) + 1970).tolist():
        cny = np.datetime64(_CNY.get(y, f"{y}-02-01"), "D")
        out[(dates >= cny - 20) & (dates < cny)] = 3
    return out
