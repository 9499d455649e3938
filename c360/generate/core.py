"""Runs the whole simulation and writes the landing zone plus the ``_truth/`` answer keys.

Population-wide arrays are built once; the 24 months are then simulated one at a time and handed
to the Sink, whose thread writes month m while month m+1 is computed, so memory holds about one
month of events (peak ~4 GiB at 1M customers). Every draw comes from a seeded stream per step and
month, so the same seed gives the same bytes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from c360.generate import identity as ident
from c360.generate.calendar import DAY, Horizon
from c360.generate.catalogue import CATEGORY_NAMES, build_catalogue
from c360.generate.clickstream import Sessions, write_web
from c360.generate.commerce import future_purchases, write_orders, write_pos
from c360.generate.crm import write_consent, write_crm
from c360.generate.order import lexsort
from c360.generate.population import (
    HABIT_NAMES,
    Intensity,
    active_span,
    build_people,
    future,
    purchase_events,
)
from c360.generate.service import review_candidates, write_reviews, write_tickets
from c360.generate.writer import Sink

MIN_ORDER_GAP_S = 120  # legit orders of one person never come closer (keeps `duplicate` unambiguous)
ANONYMOUS_DEVICE_SHARE = 0.15


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get average ranks)."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2 + 1
    ranks[order] = np.repeat(avg, counts)
    pos = label.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def generate(
    out_dir: Path,
    customers: int = 20_000,
    seed: int = 42,
    end_date: str = "2026-09-30",
    months: int = 24,
    fmt: str = "csv",
    progress: bool = True,
) -> dict:
    """Write a synthetic landing zone for ``customers`` persons and return a summary."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    horizon = Horizon.ending(end_date, months)
    sink = Sink(out_dir, fmt, seed)
    try:
        summary = _generate(out_dir, customers, seed, horizon, fmt, progress, sink, started)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return summary


def _generate(
    out_dir: Path,
    customers: int,
    seed: int,
    horizon: Horizon,
    fmt: str,
    progress: bool,
    sink: Sink,
    started: float,
) -> dict:
    month_list = horizon.months()
    bar = tqdm(total=len(month_list) + 6, desc="generate", unit="step", file=sys.stderr, disable=not progress)

    n_stores = int(np.clip(customers // 400, len(ident.CITIES), 400))
    store_city = np.concatenate(
        [
            np.arange(len(ident.CITIES)),
            ident.weighted(_rng(seed, 1), [c[4] for c in ident.CITIES], n_stores - len(ident.CITIES)),
        ]
    )
    cat = build_catalogue(_rng(seed, 2), customers, horizon.days)
    people = build_people(_rng(seed, 3), customers, horizon, n_stores, store_city)
    inten = Intensity.for_horizon(horizon)
    ev_person, ev_t, ev_kind = purchase_events(_rng(seed, 4), people, horizon, inten)
    by_person = lexsort((ev_t, ev_person))
    close = np.zeros(len(ev_t), dtype=bool)
    close[by_person[1:]] = (ev_person[by_person[1:]] == ev_person[by_person[:-1]]) & (
        np.diff(ev_t[by_person]) < MIN_ORDER_GAP_S
    )
    ev_person, ev_t, ev_kind = ev_person[~close], ev_t[~close], ev_kind[~close]
    sink.write(
        "products",
        "products",
        {
            "product_id": cat.product_id,
            "product_name": cat.name,
            "category": ident.take(CATEGORY_NAMES, cat.category),
            "brand": cat.brand,
            "price": pa.array(cat.price),
            "launched_at": pa.array(
                (horizon.start_s // DAY + cat.launch_day).astype("datetime64[D]"), pa.date32()
            ),
            "discontinued": pa.array(cat.disc_day < horizon.days),
        },
    )
    bar.update()

    crm = write_crm(_rng(seed, 5), people, horizon, sink)
    consent_ids, consent_person = write_consent(_rng(seed, 6), crm, horizon, sink)
    bar.update()

    # Sessions: one per online order plus browsing visits that fade before a person stops.
    rng = _rng(seed, 7)
    a, b = active_span(people, horizon)
    k = np.where(people.has_account, rng.poisson(people.visit_rate * (b - a)), 0)
    br_person = np.repeat(np.arange(people.n), k)
    br_day = a[br_person] + rng.random(len(br_person)) * (b - a)[br_person]
    keep = rng.random(len(br_person)) > 0.85 * people.fading(br_person, br_day)
    br_person, br_day = br_person[keep], br_day[keep]
    br_t = horizon.start_s + (br_day * DAY).astype(np.int64)
    online = np.flatnonzero(ev_kind < 2)
    s_person = np.concatenate([ev_person[online], br_person])
    s_t = np.concatenate([ev_t[online], br_t])
    order = lexsort((s_t, s_person))
    n_sess = np.bincount(s_person, minlength=people.n)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(np.cumsum(n_sess) - n_sess, n_sess)
    n_dev = np.minimum(1 + ident.weighted(rng, [45, 35, 20], people.n), n_sess)
    local = np.where(
        rank < n_dev[s_person], rank, (rng.random(len(s_person)) * np.maximum(n_dev[s_person], 1)).astype(int)
    )
    dev_offset = np.cumsum(n_dev) - n_dev
    s_device = dev_offset[s_person] + local
    s_forced = rank < n_dev[s_person]
    n_person_dev = int(n_dev.sum())
    n_anon = round(n_person_dev * ANONYMOUS_DEVICE_SHARE / (1 - ANONYMOUS_DEVICE_SHARE))
    device_ids = ident.padded(ident.unique_ints(rng, n_person_dev + n_anon, 10**8, 10**9), 9, "DV")
    device_person = np.concatenate([np.repeat(np.arange(people.n), n_dev), np.full(n_anon, -1)])
    an_k = 1 + rng.poisson(0.8, n_anon)
    an_device = n_person_dev + np.repeat(np.arange(n_anon), an_k)
    an_t = rng.integers(horizon.start_s, horizon.end_s - 3600, len(an_device))
    order_device, order_forced = s_device[: len(online)], s_forced[: len(online)]
    br_device, br_forced = s_device[len(online) :], s_forced[len(online) :]
    online_pos = np.full(len(ev_t), -1)
    online_pos[online] = np.arange(len(online))
    # Per-session working arrays are large at scale and not needed past this point.
    del s_person, s_t, order, n_sess, rank, local, s_device, s_forced, dev_offset, br_day, keep
    bar.update()

    rng = _rng(seed, 8)
    order_pool = ident.padded(
        ident.unique_ints(rng, len(online) + len(online) // 20 + 200, 10**9, 10**10), 10, "SO"
    )
    next_copy = [len(online)]

    def copy_ids(n: int, pool: pa.Array = order_pool) -> pa.Array:
        out = pool.slice(next_copy[0], n)
        next_copy[0] += n
        return out

    second_account = np.full(people.n, -1)
    n_primary = int(people.has_account.sum())
    second_account[people.account_person[n_primary:]] = np.arange(n_primary, len(people.account_person))
    identity: list[tuple[str, pa.Array, np.ndarray]] = []
    review_parts = []
    orders = sessions = None
    for month_no, (month, lo, hi) in enumerate(month_list):
        mrng = _rng(seed, 100, month_no)
        in_month = (ev_t >= lo) & (ev_t <= hi)
        oi = np.flatnonzero(in_month & (ev_kind < 2))
        orders = write_orders(
            mrng,
            people,
            cat,
            month,
            month_no,
            hi,
            ev_person[oi],
            ev_t[oi],
            ev_kind[oi],
            order_pool.take(pa.array(online_pos[oi])),
            copy_ids,
            second_account,
            horizon,
            sink,
        )
        identity.append(("ecommerce_orders", orders.order_id, orders.person))
        si = np.flatnonzero(in_month & (ev_kind == 2))
        tx, who = write_pos(
            mrng, people, cat, month, month_no, lo, hi, ev_person[si], ev_t[si], n_stores, horizon, sink
        )
        identity.append(("pos_transactions", tx, who))

        buy_rows = np.flatnonzero(orders.copy_of < 0)
        g = online_pos[oi[orders.src_row[buy_rows]]]
        bi = np.flatnonzero((br_t >= lo) & (br_t <= hi))
        ai = np.flatnonzero((an_t >= lo) & (an_t <= hi))
        nb, na = len(bi), len(ai)
        sessions = Sessions(
            kind=np.concatenate(
                [np.zeros(len(buy_rows), np.int8), np.ones(nb, np.int8), np.full(na, 2, np.int8)]
            ),
            person=np.concatenate([orders.person[buy_rows], br_person[bi], np.full(na, -1)]),
            account=np.concatenate(
                [orders.account[buy_rows], people.primary_account[br_person[bi]], np.full(na, -1)]
            ),
            device=np.concatenate([order_device[g], br_device[bi], an_device[ai]]),
            anchor=np.concatenate([orders.t[buy_rows], br_t[bi], an_t[ai]]),
            channel=np.concatenate(
                [
                    orders.channel[buy_rows],
                    (mrng.random(nb) < people.app_share[br_person[bi]]).astype(np.int8),
                    (mrng.random(na) < 0.4).astype(np.int8),
                ]
            ),
            order_row=np.concatenate([buy_rows, np.full(nb + na, -1)]),
            forced_login=np.concatenate([order_forced[g], br_forced[bi], np.zeros(na, bool)]),
        )
        write_web(mrng, people, cat, month, month_no, lo, hi, orders, sessions, device_ids, horizon, sink)
        review_parts.append(review_candidates(mrng, people, horizon, orders, orders.account))
        bar.update()

    n_purchases = np.bincount(ev_person, minlength=people.n)
    # The months' inputs are the bulk of the memory at scale; the truth files below need none.
    del ev_person, ev_t, ev_kind, order_pool, online_pos, br_person, br_t, br_device, br_forced
    del an_device, an_t, order_device, order_forced, sessions, orders, copy_ids
    ticket_ids, ticket_person = write_tickets(_rng(seed, 9), people, cat, horizon, sink)
    review_ids, review_person, review_truth = write_reviews(
        _rng(seed, 10), people, cat, horizon, review_parts, sink
    )
    del review_parts
    bar.update()

    churn_prob, churned, f_person, f_day, f_count = future(_rng(seed, 11), people, horizon, inten)
    sink.write_truth(
        "future_purchases", future_purchases(_rng(seed, 12), people, cat, horizon, f_person, f_day, f_count)
    )
    bar.update()

    identity = (
        [("crm_customers", crm.customer_ref, crm.person)]
        + identity
        + [
            ("web_events", device_ids, device_person),
            ("service_tickets", ticket_ids, ticket_person),
            ("product_reviews", review_ids, review_person),
            ("marketing_consent", consent_ids, consent_person),
        ]
    )
    order = {
        s: i
        for i, s in enumerate(
            [
                "crm_customers",
                "ecommerce_orders",
                "web_events",
                "pos_transactions",
                "service_tickets",
                "product_reviews",
                "marketing_consent",
            ]
        )
    }
    identity.sort(key=lambda x: order[x[0]])
    source = np.concatenate([np.full(len(rec), order[name], dtype=np.int8) for name, rec, _ in identity])
    who = np.concatenate([w for _, _, w in identity])
    sink.write_truth(
        "identity",
        pa.table(
            {
                "source": ident.labels(list(order), source),
                "source_record_id": pa.concat_arrays([rec for _, rec, _ in identity]),
                "person_id": ident.labels(people.person_id, who, who < 0),
            }
        ),
    )
    del identity, source, who

    alive = people.death > horizon.days
    start_day = horizon.start_s // DAY
    acquired = (start_day + np.floor(people.acq)).astype(np.int64).astype("datetime64[D]")
    stopped = (
        (start_day + np.floor(np.where(alive, 0, people.death))).astype(np.int64).astype("datetime64[D]")
    )
    sink.write_truth(
        "persons",
        pa.table(
            {
                "person_id": people.person_id,
                "churn_prob": pa.array(churn_prob),
                "churned_next_90d": pa.array(churned),
                "alive_at_end": pa.array(alive),
                "purchases_in_history": pa.array(n_purchases),
                "purchase_rate": pa.array(people.lam),
                "hazard": pa.array(people.hazard),
                "promo_sensitivity": pa.array(people.promo_sens),
                "value_level": pa.array(people.value),
                "mood": pa.array(people.mood),
                "top_category": ident.take(CATEGORY_NAMES, people.pref.argmax(axis=1)),
                "time_of_day": ident.take(HABIT_NAMES, people.habit),
                "has_account": pa.array(people.has_account),
                "acquired_on": pa.array(acquired, pa.date32()),
                "stopped_on": pa.array(stopped, pa.date32(), mask=alive),
                "namesake_of": pc.if_else(
                    pa.array(people.namesake_of >= 0),
                    people.person_id.take(pa.array(np.maximum(people.namesake_of, 0))),
                    pa.nulls(people.n, pa.string()),
                ),
            }
        ),
    )
    rows = [(f"B{i + 1:03d}", b_) for i, bundle in enumerate(cat.bundles) for b_ in bundle]
    sink.write_truth(
        "bundles",
        pa.table(
            {
                "bundle_id": pa.array([r[0] for r in rows], pa.string()),
                "product_id": cat.product_id.take(pa.array([r[1] for r in rows], pa.int64())),
                "category": ident.take(CATEGORY_NAMES, cat.category[[r[1] for r in rows]]),
            }
        ),
    )
    disc = cat.disc_day < horizon.days
    sink.write_truth(
        "products",
        pa.table(
            {
                "product_id": cat.product_id,
                "quality": pa.array(cat.quality),
                "discontinued_on": pa.array(
                    (start_day + np.where(disc, cat.disc_day, 0)).astype("datetime64[D]"),
                    pa.date32(),
                    mask=~disc,
                ),
            }
        ),
    )
    sink.write_truth("reviews", review_truth)
    defects = sink.defects_table()
    sink.write_truth("defects", defects)

    ever = n_purchases > 0
    summary = {
        "out_dir": str(out_dir),
        "customers": customers,
        "seed": seed,
        "format": fmt,
        "start_date": str(horizon.start),
        "end_date": str(horizon.end),
        "rows": dict(sorted(sink.rows.items())),
        "files": len(sink.files),
        "defects": dict(
            sorted(
                zip(
                    *np.unique(
                        defects.column("defect_type").to_numpy(zero_copy_only=False), return_counts=True
                    )
                )
            )
        )
        if defects.num_rows
        else {},
        "churn_rate": float(churned[ever].mean()) if ever.any() else float("nan"),
        "bayes_auc": auc(churn_prob[ever], churned[ever]),
    }
    summary["defects"] = {str(k_): int(v) for k_, v in summary["defects"].items()}
    sink.flush()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    (out_dir / "_truth" / "manifest.json").write_text(
        json.dumps({k_: v for k_, v in summary.items() if k_ != "seconds"}, indent=2, sort_keys=True) + "\n"
    )
    bar.update()
    bar.close()
    return summary
