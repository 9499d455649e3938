"""Persons: canonical identities, latent behaviour, and the purchase/churn process.

Each person buys as a Poisson process with rate ``lam * (base(t) + promo_sens * promo(t))`` per day
from acquisition until they stop for good, which happens at a constant daily hazard. In the 30-120
days before stopping, visits fade, carts get abandoned, and complaints and bad reviews appear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.generate import identity as ident
from c360.generate.calendar import DAY, FUTURE_DAYS, Horizon, season_curves
from c360.generate.catalogue import N_CATEGORIES
from c360.generate.order import lexsort

# Tuned so the Bayes AUC is ~0.85-0.89 and ~30-40% of buyers make no purchase in the next 90 days.
HAZARD_MEDIAN = 1 / 5500
HAZARD_SPREAD = 1.0
RATE_MEAN = 0.022
RATE_SPREAD = 1.0
ACCOUNT_SHARE = 0.85
LOYALTY_SHARE = 0.78
SECOND_ACCOUNT_SHARE = 0.02
# Hour-of-day centres for the morning / afternoon / evening / night habit.
HABIT_HOURS = np.array([9.0, 14.5, 20.5, 23.5])
HABIT_NAMES = ["morning", "afternoon", "evening", "night"]


@dataclass
class People:
    n: int
    person_id: pa.Array
    first: pa.Array
    last: pa.Array
    male: np.ndarray
    birth: np.ndarray  # datetime64[D]
    city: np.ndarray
    postcode: pa.Array
    email: pa.Array
    phone: pa.Array
    loyalty: pa.Array  # null when the person has no card
    national_id: pa.Array
    bank_card: pa.Array
    namesake_of: np.ndarray  # -1, or the person whose name (and postcode) this one copies
    # Shop accounts: a person has 0, 1 or 2.
    account_person: np.ndarray
    account_id: pa.Array
    account_email: pa.Array
    primary_account: np.ndarray  # index into the account arrays, -1 without an account
    # Behaviour (days are horizon-relative floats).
    acq: np.ndarray
    death: np.ndarray
    window: np.ndarray  # length of the pre-churn signal window in days
    lam: np.ndarray
    hazard: np.ndarray
    promo_sens: np.ndarray
    value: np.ndarray
    mood: np.ndarray
    pref: np.ndarray  # (n, categories) float32
    pref_cum: np.ndarray  # running sum of pref along categories, for inverse-CDF draws
    habit: np.ndarray
    online_share: np.ndarray
    app_share: np.ndarray
    pay_online: np.ndarray
    pay_store: np.ndarray
    home_store: np.ndarray
    review_rate: np.ndarray
    visit_rate: np.ndarray

    @property
    def has_account(self) -> np.ndarray:
        return self.primary_account >= 0

    def fading(self, person: np.ndarray, day: np.ndarray) -> np.ndarray:
        """0 outside the pre-churn window, rising to 1 at the moment the person stops."""
        start = self.death[person] - self.window[person]
        return np.clip((day - start) / self.window[person], 0, 1) * (day <= self.death[person])


def build_people(
    rng: np.random.Generator, n: int, horizon: Horizon, n_stores: int, store_city: np.ndarray
) -> People:
    male = rng.random(n) < 0.5
    fem_w, male_w = ident.zipf_weights(len(ident.FEMALE)), ident.zipf_weights(len(ident.MALE))
    given_idx = np.where(
        male, ident.weighted(rng, male_w, n) + len(ident.FEMALE), ident.weighted(rng, fem_w, n)
    )
    given_all = ident.FEMALE + ident.MALE
    surname_idx = ident.weighted(rng, [w for _, w in ident.SURNAMES], n)
    age_days = (18 * 365 + rng.gamma(2.2, 9.0, n).clip(0, 57) * 365).astype(int)
    birth = np.datetime64(horizon.end, "D") - age_days
    city = ident.weighted(rng, [c[4] for c in ident.CITIES], n)
    post_num = np.array([c[2] for c in ident.CITIES])[city] * 1000 + rng.integers(0, 60, n) * 10

    # Namesakes: a few persons share the full name (and some the postcode) of another.
    namesake_of = np.full(n, -1)
    k = max(4, n // 400)
    src, dst = rng.choice(n, size=(2, k), replace=False)
    namesake_of[dst] = src
    given_idx[dst], surname_idx[dst], male[dst] = given_idx[src], surname_idx[src], male[src]
    same_pc = dst[: max(3, k // 3)]
    city[same_pc] = city[namesake_of[same_pc]]
    post_num[same_pc] = post_num[namesake_of[same_pc]]
    clash = birth[dst] == birth[src]
    birth[dst[clash]] -= 400

    first = ident.take(given_all, given_idx)
    last = ident.take([s for s, _ in ident.SURNAMES], surname_idx)
    birth_year = birth.astype("datetime64[Y]").astype(int) + 1970
    email = ident.email_addresses(rng, first, last, birth_year)
    phone = ident.mobile_numbers(rng, n)
    has_card = rng.random(n) < LOYALTY_SHARE
    cards = ident.padded(ident.unique_ints(rng, n, 0, 10**8), 8, "LC")
    loyalty = pc.if_else(pa.array(has_card), cards, pa.nulls(n, pa.string()))
    area = np.array([c[3] for c in ident.CITIES])[city] * 100 + rng.integers(1, 20, n)
    national_id = ident.national_ids(area, birth, male, rng)
    bank_card = ident.bank_cards(rng, n)

    has_account = rng.random(n) < ACCOUNT_SHARE
    holders = np.flatnonzero(has_account)
    second = holders[rng.random(len(holders)) < SECOND_ACCOUNT_SHARE]
    account_person = np.concatenate([holders, second])
    n_acc = len(account_person)
    account_id = ident.padded(ident.unique_ints(rng, n_acc, 1, 10**7), 7, "U")
    # A second account was opened with the same address typed differently.
    acc_email = email.take(pa.array(account_person))
    acc_email = pa.concat_arrays(
        [
            acc_email.slice(0, len(holders)),
            ident.email_variants(acc_email.slice(len(holders)), rng, clean_share=0.0),
        ]
    )
    primary = np.full(n, -1)
    primary[holders] = np.arange(len(holders))

    # Latent behaviour. z drives churn propensity and leaks into mood (complaints, reviews).
    z = rng.normal(size=n)
    mood = -0.5 * z + np.sqrt(0.75) * rng.normal(size=n)
    hazard = HAZARD_MEDIAN * np.exp(HAZARD_SPREAD * z)
    lam = RATE_MEAN * np.exp(RATE_SPREAD * rng.normal(size=n) - RATE_SPREAD**2 / 2)
    acq = rng.uniform(-365, horizon.days - 30, n)
    death = acq + rng.exponential(1 / hazard)
    window = rng.uniform(30, 120, n)
    pref = rng.dirichlet(np.full(N_CATEGORIES, 0.35), n).astype(np.float32)
    online = np.where(has_account, rng.beta(5, 2, n), 0.0)
    store_of_city = [np.flatnonzero(store_city == c) for c in range(len(ident.CITIES))]
    home_store = np.array(
        [
            rng.choice(s) if len(s) else rng.integers(0, n_stores)
            for s in (store_of_city[c] for c in range(len(ident.CITIES)))
        ]
    )[city]

    return People(
        n=n,
        person_id=ident.padded(np.arange(1, n + 1), 7, "PER"),
        first=first,
        last=last,
        male=male,
        birth=birth,
        city=city,
        postcode=ident.padded(post_num, 6),
        email=email,
        phone=phone,
        loyalty=loyalty,
        national_id=national_id,
        bank_card=bank_card,
        namesake_of=namesake_of,
        account_person=account_person,
        account_id=account_id,
        account_email=acc_email,
        primary_account=primary,
        acq=acq,
        death=death,
        window=window,
        lam=lam,
        hazard=hazard,
        promo_sens=rng.beta(1.5, 3, n) * 1.5,
        value=rng.beta(2, 2, n),
        mood=mood,
        pref=pref,
        pref_cum=np.cumsum(pref, axis=1),
        habit=ident.weighted(rng, [3, 3, 5, 2], n),
        online_share=online,
        app_share=rng.beta(2, 2, n),
        pay_online=ident.weighted(rng, [2, 5, 5, 1], n),
        pay_store=ident.weighted(rng, [2, 3, 3, 3], n),
        home_store=home_store,
        review_rate=rng.gamma(2.0, 0.5, n),
        visit_rate=0.35 * lam + 0.006 * rng.gamma(4, 0.25, n),
    )


def seconds_of_day(rng: np.random.Generator, habit: np.ndarray) -> np.ndarray:
    """A time of day following the person's habit 70% of the time, else anywhere 08-23h."""
    n = len(habit)
    hour = np.where(rng.random(n) < 0.7, HABIT_HOURS[habit] + rng.normal(0, 1.3, n), rng.uniform(8, 23.9, n))
    return (np.mod(hour, 24) * 3600).astype(np.int64)


@dataclass
class Intensity:
    """Cumulative base and promo intensities over horizon days (and the 90 future days)."""

    base: np.ndarray
    promo: np.ndarray
    cum_base: np.ndarray
    cum_promo: np.ndarray

    @classmethod
    def for_horizon(cls, horizon: Horizon) -> Intensity:
        base, promo = season_curves(horizon.day_dates(0, horizon.days + FUTURE_DAYS))
        d = horizon.days
        return cls(
            base,
            promo,
            np.concatenate([[0], np.cumsum(base[:d])]),
            np.concatenate([[0], np.cumsum(promo[:d])]),
        )

    def cum(self, which: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.interp(x, np.arange(len(which)), which)

    def inverse(self, which: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.interp(y, which, np.arange(len(which)))


def active_span(p: People, horizon: Horizon) -> tuple[np.ndarray, np.ndarray]:
    a = np.maximum(p.acq, 0.0)
    b = np.minimum(p.death, float(horizon.days))
    return a, np.maximum(a, b)


def purchase_events(rng: np.random.Generator, p: People, horizon: Horizon, inten: Intensity):
    """Every purchase occasion in the horizon: (person, time in seconds, kind 0 web / 1 app / 2 store)."""
    a, b = active_span(p, horizon)
    mu_base = p.lam * (inten.cum(inten.cum_base, b) - inten.cum(inten.cum_base, a))
    mu_promo = p.lam * p.promo_sens * (inten.cum(inten.cum_promo, b) - inten.cum(inten.cum_promo, a))
    nb, np_ = rng.poisson(mu_base), rng.poisson(mu_promo)
    person = np.concatenate([np.repeat(np.arange(p.n), nb), np.repeat(np.arange(p.n), np_)])
    is_promo = np.concatenate([np.zeros(nb.sum(), bool), np.ones(np_.sum(), bool)])
    lo = np.where(is_promo, inten.cum(inten.cum_promo, a[person]), inten.cum(inten.cum_base, a[person]))
    hi = np.where(is_promo, inten.cum(inten.cum_promo, b[person]), inten.cum(inten.cum_base, b[person]))
    y = lo + rng.random(len(person)) * (hi - lo)
    day = np.where(is_promo, inten.inverse(inten.cum_promo, y), inten.inverse(inten.cum_base, y))
    day = np.clip(np.floor(day), 0, horizon.days - 1).astype(np.int64)
    t = horizon.start_s + day * DAY + seconds_of_day(rng, p.habit[person])
    online = rng.random(len(person)) < p.online_share[person]
    kind = np.where(online, (rng.random(len(person)) < p.app_share[person]).astype(np.int8), 2).astype(
        np.int8
    )
    order = lexsort((person, t))
    return person[order], t[order], kind[order]


def future(rng: np.random.Generator, p: People, horizon: Horizon, inten: Intensity):
    """Closed-form P(no purchase in the next 90 days) and one realisation of that future.

    Day by day after the end date: the person first stops with probability 1 - exp(-hazard),
    otherwise buys Poisson(lam * (base + promo_sens * promo)) times. Returns churn_prob,
    churned (bool) and the future purchases as (person, day offset, count).
    """
    d = horizon.days
    alive = p.death > d
    churn_prob = np.ones(p.n)
    churned = np.ones(p.n, dtype=bool)
    fut_person, fut_day, fut_count = [], [], []
    idx_alive = np.flatnonzero(alive)
    for chunk in np.array_split(idx_alive, max(1, len(idx_alive) // 100_000)):
        if not len(chunk):
            continue
        rate = p.lam[chunk, None] * (
            inten.base[None, d : d + FUTURE_DAYS]
            + p.promo_sens[chunk, None] * inten.promo[None, d : d + FUTURE_DAYS]
        )
        q = 1 - np.exp(-p.hazard[chunk])
        step = (1 - q)[:, None] * np.exp(-rate)
        surv = np.concatenate([np.ones((len(chunk), 1)), np.cumprod(step, axis=1)], axis=1)
        churn_prob[chunk] = (surv[:, :FUTURE_DAYS] * q[:, None]).sum(axis=1) + surv[:, FUTURE_DAYS]
        dies = rng.random((len(chunk), FUTURE_DAYS)) < q[:, None]
        alive_day = np.cumsum(dies, axis=1) == 0
        counts = rng.poisson(rate) * alive_day
        churned[chunk] = counts.sum(axis=1) == 0
        r, c = np.nonzero(counts)
        fut_person.append(chunk[r])
        fut_day.append(c)
        fut_count.append(counts[r, c])
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)
    return churn_prob, churned, cat(fut_person), cat(fut_day), cat(fut_count)
