"""Customer-service tickets and product reviews, both shaped by mood and the pre-churn window."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.generate import identity as ident
from c360.generate.calendar import DAY, Horizon
from c360.generate.catalogue import CATEGORY_NAMES, Catalogue
from c360.generate.defects import plant
from c360.generate.order import lexsort
from c360.generate.population import People, active_span, seconds_of_day
from c360.generate.text import review_texts, ticket_texts
from c360.generate.writer import Sink

TICKET_CATEGORIES = ["delivery", "refund", "product", "complaint", "account"]
BASE_TICKETS_PER_DAY = 0.00035


def write_tickets(
    rng, p: People, cat: Catalogue, horizon: Horizon, sink: Sink
) -> tuple[pa.Array, np.ndarray]:
    a, b = active_span(p, horizon)
    k = rng.poisson(BASE_TICKETS_PER_DAY * (b - a) * np.exp(-0.3 * p.mood))
    person = np.repeat(np.arange(p.n), k)
    day = a[person] + rng.random(len(person)) * (b - a)[person]
    bad = np.clip(-p.mood[person], 0, None)
    category = ident.weighted(rng, [3, 1.5, 2.5, 1, 1.5], len(person))
    category = np.where(rng.random(len(person)) < 0.25 * bad, 3, category)
    # Complaints and refund demands in the weeks before a person leaves for good.
    stops = (p.death < horizon.days) & (p.death - p.window > 0)
    k2 = np.where(stops & (rng.random(p.n) < 0.7), 1 + rng.poisson(0.4, p.n), 0)
    p2 = np.repeat(np.arange(p.n), k2)
    d2 = p.death[p2] - p.window[p2] * rng.uniform(0.0, 0.9, len(p2))
    c2 = np.where(rng.random(len(p2)) < 0.6, 3, 1)
    person, day, category = (
        np.concatenate([person, p2]),
        np.concatenate([day, d2]),
        np.concatenate([category, c2]),
    )
    angry = (category == 3) | (category == 1) & (rng.random(len(person)) < 0.5) | (p.mood[person] < -1.2)
    t = horizon.start_s + np.floor(day).astype(np.int64) * DAY + seconds_of_day(rng, p.habit[person])
    t = np.minimum(t, horizon.end_s)
    order = lexsort((person, t))
    person, t, category, angry = person[order], t[order], category[order], angry[order]
    n = len(person)

    item_cat = (rng.random(n)[:, None] > p.pref_cum[person]).sum(axis=1).clip(0, len(CATEGORY_NAMES) - 1)
    item = pc.utf8_lower(ident.take([c.split("_")[0] for c in CATEGORY_NAMES], item_cat))
    item = pc.if_else(
        pa.array(rng.random(n) < 0.5),
        ident.join("order ", ident.padded(rng.integers(1, 10**6, n), 6, "#")),
        ident.join(item, " item"),
    )
    text = ticket_texts(rng, category, TICKET_CATEGORIES, angry, item)
    text = pc.if_else(pa.array(rng.random(n) < 0.03), pa.nulls(n, pa.string()), text)
    channel = ident.weighted(rng, [4, 3, 3], n)  # phone, email, chat
    with_email = np.where(channel == 1, True, rng.random(n) < 0.5)
    with_phone = np.where(channel == 0, True, rng.random(n) < 0.5)
    with_phone |= ~with_email
    email = pc.if_else(
        pa.array(with_email),
        ident.email_variants(p.email.take(pa.array(person)), rng),
        pa.nulls(n, pa.string()),
    )
    phone = pc.if_else(
        pa.array(with_phone),
        ident.phone_variants(p.phone.take(pa.array(person)), rng),
        pa.nulls(n, pa.string()),
    )
    duration = (rng.lognormal(np.log(20 * 3600), 1.2, n)).astype(np.int64)
    closed = t + duration
    is_open = (closed > horizon.end_s) | (rng.random(n) < 0.03)
    resolution = np.where(
        category == 1, np.where(rng.random(n) < 0.6, 3, 0), ident.weighted(rng, [8, 0, 1, 0], n)
    )
    resolution = np.where(is_open, np.where(rng.random(n) < 0.8, 1, 2), resolution)
    ticket_id = ident.padded(np.arange(1, n + 1), 8, "TK")

    codes = np.zeros(n, dtype=np.int8)
    floor = 3 if n >= 60 else 1
    bad_e = plant(rng, codes, "service_tickets", "invalid_email", with_email, floor)
    bad_p = plant(rng, codes, "service_tickets", "invalid_phone", with_phone, floor)
    plant(rng, codes, "service_tickets", "malformed_line", None, floor)
    for rows, col, clean, fn in (
        (bad_e, "email", p.email, ident.invalid_emails),
        (bad_p, "phone", p.phone, ident.invalid_phones),
    ):
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        new = fn(clean.take(pa.array(person[rows])), rng)
        if col == "email":
            email = pc.replace_with_mask(email, pa.array(mask), new)
        else:
            phone = pc.replace_with_mask(phone, pa.array(mask), new)
    cols = {
        "ticket_id": ticket_id,
        "opened_at": pa.array(t, pa.timestamp("s")),
        "closed_at": pa.array(closed, pa.timestamp("s"), mask=is_open),
        "channel": ident.take(["phone", "email", "chat"], channel),
        "email": email,
        "phone": phone,
        "category": ident.take(TICKET_CATEGORIES, category),
        "text": text,
        "resolution": ident.take(["resolved", "pending", "escalated", "refunded"], resolution),
    }
    _write_monthly(sink, "service_tickets", cols, t, codes, horizon)
    return ticket_id, person


def review_candidates(rng, p: People, horizon: Horizon, orders, account_of_row: np.ndarray) -> dict:
    """Pick the order lines that get reviewed this month (reviews are written later, by date)."""
    line_row = np.repeat(np.arange(len(orders.t)), orders.n_lines)
    person = orders.person[line_row]
    day = (orders.t[line_row] - horizon.start_s) / DAY
    fading = p.fading(person, day)
    prob = 0.045 * p.review_rate[person] + 0.3 * (fading > 0)
    pick = orders.line_legit & (orders.copy_of[line_row] < 0) & (rng.random(len(line_row)) < prob)
    rows = np.flatnonzero(pick)
    created = (
        orders.t[line_row[rows]] + rng.integers(2, 20, len(rows)) * DAY + rng.integers(0, DAY, len(rows))
    )
    keep = created <= horizon.end_s
    rows = rows[keep]
    return {
        "person": person[rows],
        "account": account_of_row[line_row[rows]],
        "product": orders.line_product[rows],
        "order_id": orders.order_id.take(pa.array(line_row[rows])),
        "created": created[keep],
        "fading": fading[rows],
    }


def write_reviews(rng, p: People, cat: Catalogue, horizon: Horizon, parts: list[dict], sink: Sink):
    person = np.concatenate([x["person"] for x in parts])
    account = np.concatenate([x["account"] for x in parts])
    product = np.concatenate([x["product"] for x in parts])
    created = np.concatenate([x["created"] for x in parts])
    fading = np.concatenate([x["fading"] for x in parts])
    order_id = pa.concat_arrays([x["order_id"] for x in parts])
    order = lexsort((product, person, created))
    person, account, product, created, fading = (
        person[order],
        account[order],
        product[order],
        created[order],
        fading[order],
    )
    order_id = order_id.take(pa.array(order))
    n = len(person)
    latent = (
        3.9 + 0.45 * p.mood[person] + 0.5 * cat.quality[product] - 2.4 * (fading > 0) + rng.normal(0, 0.8, n)
    )
    score = np.clip(np.round(latent), 1, 5).astype(np.int64)
    item = pc.utf8_lower(ident.take(CATEGORY_NAMES, cat.category[product]))
    item = pc.if_else(
        pa.array(rng.random(n) < 0.5),
        ident.join(item, " item"),
        ident.take(["product", "thing", "one"], rng.integers(0, 3, n)),
    )
    text, tone = review_texts(rng, score, item)
    text = pc.if_else(pa.array(rng.random(n) < 0.04), pa.nulls(n, pa.string()), text)
    review_id = ident.padded(np.arange(1, n + 1), 8, "RV")
    codes = np.zeros(n, dtype=np.int8)
    floor = 3 if n >= 60 else 1
    miss = plant(rng, codes, "product_reviews", "missing_required", None, floor)
    plant(rng, codes, "product_reviews", "malformed_line", None, floor)
    cols = {
        "review_id": review_id,
        "account_id": p.account_id.take(pa.array(account)),
        "product_id": cat.product_id.take(pa.array(product)),
        "order_id": order_id,
        "score": pa.array(score, mask=np.isin(np.arange(n), miss)),
        "text": text,
        "created_at": pa.array(created, pa.timestamp("s")),
    }
    _write_monthly(sink, "product_reviews", cols, created, codes, horizon)
    truth = pa.table(
        {
            "review_id": review_id,
            "score": pa.array(score),
            "tone": ident.take(["negative", "mixed", "positive", "sarcastic"], tone),
            "pre_churn": pa.array(fading > 0),
        }
    )
    return review_id, person, truth


def _write_monthly(
    sink: Sink, source: str, cols: dict, t: np.ndarray, codes: np.ndarray, horizon: Horizon
) -> None:
    for month, lo, hi in horizon.months():
        rows = np.flatnonzero((t >= lo) & (t <= hi))
        sel = pa.array(rows)
        sink.write(source, f"{source}_{month}", {k: v.take(sel) for k, v in cols.items()}, codes[rows])
