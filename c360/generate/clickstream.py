"""Web and app clickstream: funnel sessions on devices, logins, cart abandonment, anonymous visitors.

A session is page_view -> search? -> product_view x m -> add_to_cart x c -> checkout x k -> purchase?;
event types follow from an event's position within its session, so a month of sessions expands
into events with a few vector operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.generate import identity as ident
from c360.generate.calendar import DAY, Horizon
from c360.generate.catalogue import CATEGORY_NAMES, Catalogue, choose_products
from c360.generate.commerce import MonthOrders
from c360.generate.defects import plant
from c360.generate.order import lexsort
from c360.generate.population import People
from c360.generate.writer import Sink

EVENT_TYPES = ["page_view", "search", "product_view", "add_to_cart", "checkout", "purchase"]


@dataclass
class Sessions:
    """One month's sessions (purchase, browse and anonymous) before expansion into events."""

    kind: np.ndarray  # 0 purchase, 1 browse, 2 anonymous
    person: np.ndarray  # -1 for anonymous
    account: np.ndarray  # -1 for anonymous
    device: np.ndarray
    anchor: np.ndarray  # purchase: time of the purchase event; others: session start
    channel: np.ndarray
    order_row: np.ndarray  # purchase sessions: row in MonthOrders
    forced_login: np.ndarray


def time_order(t: np.ndarray, sess: np.ndarray, pos: np.ndarray, n_head: int) -> np.ndarray:
    """``np.lexsort((pos, sess, t))`` where the first ``n_head`` rows are already in (sess, pos)
    order (as sessions expand) and the few rows after them are not.

    Each row's rank in (sess, pos, row) order is worked out by merging the small tail into the
    head; then time and rank are packed into one int64 and sorted by value (numpy's vectorised
    sort, several times faster than lexsort's three stable passes). Same order, ties included.
    """
    n = len(t)
    if not n:
        return np.zeros(0, dtype=np.int64)
    width = int(pos.max()) + 1
    key = sess.astype(np.int64) * width + pos
    head = key[:n_head]
    t0 = int(t.min())
    rank_bits = (n - 1).bit_length()
    if (
        min(int(sess.min()), int(pos.min())) < 0
        or np.any(head[1:] < head[:-1])
        or (int(t.max()) - t0).bit_length() + rank_bits > 63
    ):
        return np.lexsort((pos, sess, t))
    tail = key[n_head:]
    tail_sorted = np.argsort(tail, kind="stable")
    # Head rows tie-break before tail rows (smaller row numbers), hence side="right".
    insert = np.searchsorted(head, tail[tail_sorted], side="right")
    rank = np.empty(n, dtype=np.int64)
    rank[:n_head] = np.arange(n_head) + np.searchsorted(insert, np.arange(n_head), side="right")
    rank[n_head + tail_sorted] = insert + np.arange(len(tail))
    row_of_rank = np.empty(n, dtype=np.int64)
    row_of_rank[rank] = np.arange(n)
    packed = ((t - t0) << rank_bits) | rank
    packed.sort()
    return row_of_rank[packed & ((1 << rank_bits) - 1)]


def write_web(
    rng,
    p: People,
    cat: Catalogue,
    month: str,
    month_no: int,
    m_lo: int,
    m_hi: int,
    orders: MonthOrders,
    sessions: Sessions,
    device_ids: pa.Array,
    horizon: Horizon,
    sink: Sink,
) -> None:
    s = sessions
    n = len(s.kind)
    purchase, browse = s.kind == 0, s.kind == 1
    day = (s.anchor - horizon.start_s) / DAY
    fading = np.where(s.person >= 0, p.fading(np.maximum(s.person, 0), day), 0.0)
    n_lines = (
        np.where(purchase, orders.n_lines[np.maximum(s.order_row, 0)], 0)
        if len(orders.t)
        else np.zeros(n, int)
    )
    line_start = (
        np.where(purchase, orders.line_start[np.maximum(s.order_row, 0)], 0) if len(orders.t) else n_lines
    )
    has_search = (rng.random(n) < np.where(purchase, 0.6, np.where(browse, 0.5, 0.4))).astype(np.int64)
    views = np.where(purchase, n_lines + rng.poisson(1.0, n), 1 + rng.poisson(1.5, n))
    abandon = rng.random(n) < np.where(browse, 0.15 + 0.55 * fading, 0.06)
    carts = np.where(purchase, n_lines, abandon.astype(np.int64))
    checkouts = np.where(purchase, 1, (abandon & (rng.random(n) < 0.4)).astype(np.int64))
    buys = purchase.astype(np.int64)
    b2 = 1 + has_search
    b3 = b2 + views
    b4 = b3 + carts
    b5 = b4 + checkouts
    count = b5 + buys

    sess = np.repeat(np.arange(n), count)
    start = np.cumsum(count) - count
    pos = np.arange(len(sess)) - start[sess]
    etype = (
        (pos >= 1).astype(np.int8)
        + (pos >= b2[sess])
        + (pos >= b3[sess])
        + (pos >= b4[sess])
        + (pos >= b5[sess])
    )
    etype = etype.astype(np.int8)
    if s.kind.size:
        etype = np.where((etype == 1) & (has_search[sess] == 0), 2, etype)

    shopper = np.where(s.person >= 0, s.person, rng.integers(0, p.n, n))
    product = np.full(len(sess), -1, dtype=np.int64)
    view = etype == 2
    j_view = pos - b2[sess]
    from_order = view & purchase[sess] & (j_view < n_lines[sess])
    product[from_order] = orders.line_product[line_start[sess[from_order]] + j_view[from_order]]
    other = view & ~from_order
    ev_day = np.floor(day[sess[other]]).astype(np.int64)
    product[other] = choose_products(rng, cat, shopper[sess[other]], ev_day, p.pref_cum, p.value)
    cart = etype == 3
    buy_cart = cart & purchase[sess]
    product[buy_cart] = orders.line_product[line_start[sess[buy_cart]] + (pos - b3[sess])[buy_cart]]
    loose_cart = cart & ~purchase[sess]
    product[loose_cart] = product[start[sess[loose_cart]] + b2[sess[loose_cart]]]
    query_product = np.full(len(sess), -1, dtype=np.int64)
    search_idx = np.flatnonzero(etype == 1)
    query_product[search_idx] = product[search_idx + 1]  # a search is always followed by a view

    # Times: steps of 10-150 s; a purchase lands 1-10 minutes after checkout, at the order time.
    gap = np.where(pos == 0, 0, rng.integers(10, 150, len(sess)))
    gap = np.where(etype == 5, rng.integers(60, 600, len(sess)), gap)
    cum = np.cumsum(gap)
    cum = cum - cum[start][sess]
    total = cum[start + count - 1]
    # Squeeze sessions that would cross the month boundary so each month file is self-contained.
    room = np.where(purchase, s.anchor - m_lo, m_hi - s.anchor)
    scale = np.minimum(1.0, np.maximum(room, 0) / np.maximum(total, 1))[sess]
    t = np.where(
        purchase[sess],
        s.anchor[sess] - ((total[sess] - cum) * scale).astype(np.int64),
        s.anchor[sess] + (cum * scale).astype(np.int64),
    )

    login = np.where(
        purchase,
        rng.integers(0, b4 + 1),
        np.where(
            s.forced_login,
            (rng.random(n) * count).astype(np.int64),
            np.where(browse & (rng.random(n) < 0.35), (rng.random(n) * count).astype(np.int64), count),
        ),
    )
    login = np.where((s.kind < 2) & (login < count) & (rng.random(n) < 0.5), 0, login)
    login = np.where(s.kind == 2, count, login)
    logged_in = pos >= login[sess]
    # Strings are made once, after sorting: until then an event holds the row numbers of its
    # account and order (-1 for none).
    acc_row = np.where(logged_in, np.maximum(s.account, 0)[sess], -1)
    order_row = np.where(etype == 5, s.order_row[sess], -1)

    n_head = len(sess)
    # A double-submitted order also fires a second purchase event in the original's session.
    copies = np.flatnonzero(orders.copy_of >= 0) if len(orders.t) else np.zeros(0, dtype=np.int64)
    sess_of_row = np.full(len(orders.t), -1)
    sess_of_row[s.order_row[purchase]] = np.flatnonzero(purchase)
    copies = copies[sess_of_row[orders.copy_of[copies]] >= 0]
    if len(copies):
        cs = sess_of_row[orders.copy_of[copies]]
        sess = np.concatenate([sess, cs])
        pos = np.concatenate([pos, count[cs]])
        etype = np.concatenate([etype, np.full(len(cs), 5, dtype=np.int8)])
        product = np.concatenate([product, np.full(len(cs), -1)])
        query_product = np.concatenate([query_product, np.full(len(cs), -1)])
        t = np.concatenate([t, orders.t[copies]])
        acc_row = np.concatenate([acc_row, s.account[cs]])
        order_row = np.concatenate([order_row, copies])

    order = time_order(t, sess, pos, n_head)
    sess, pos, etype, product, t = sess[order], pos[order], etype[order], product[order], t[order]
    query_product, acc_row, order_row = query_product[order], acc_row[order], order_row[order]
    m = len(sess)
    first_t = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_t, sess, t)
    sess_rank = np.empty(n, dtype=np.int64)
    sess_rank[lexsort((first_t,))] = np.arange(n)
    tag = month.replace("-", "")

    query = pa.nulls(m, pa.string())
    search_rows = np.flatnonzero(etype == 1)
    if len(search_rows):
        nxt = query_product[search_rows]
        cat_name = ident.take(CATEGORY_NAMES, cat.category[nxt])
        q = pc.if_else(
            pa.array(rng.random(len(nxt)) < 0.6),
            ident.join(pc.utf8_lower(cat.brand.take(pa.array(nxt))), " ", cat_name),
            cat_name,
        )
        mask = np.zeros(m, dtype=bool)
        mask[search_rows] = True
        query = pc.replace_with_mask(query, pa.array(mask), q)

    codes = np.zeros(m, dtype=np.int8)
    floor = 1 if month_no % 8 == 5 else 0
    dup = plant(rng, codes, "web_events", "duplicate_key", np.arange(m) >= 1, floor)
    src = (rng.random(len(dup)) * dup).astype(np.int64)
    ok = codes[src] == 0
    ok[np.setdiff1d(np.arange(len(src)), np.unique(src, return_index=True)[1])] = False  # one copy per id
    codes[dup[~ok]] = 0
    dup, src = dup[ok], src[ok]
    protect = np.zeros(m, dtype=bool)
    protect[src] = True
    id_no = np.arange(1, m + 1)
    id_no[dup] = id_no[src]
    miss = plant(rng, codes, "web_events", "missing_required", ~protect, floor)
    fut = plant(rng, codes, "web_events", "future_timestamp", ~protect, floor)
    plant(rng, codes, "web_events", "malformed_line", ~protect, floor)
    t = t.copy()
    # 2-5 years after the data's END, not after the event: shifted from the event's own time, a
    # late-2024 event landed in late 2026 - no longer in the future when the files were loaded.
    t[fut] = horizon.end_s + 1 + rng.integers(2 * 365, 5 * 365, len(fut)) * DAY + t[fut] % DAY
    no_session = np.zeros(m, dtype=bool)
    no_session[miss] = True
    session_no = sess_rank[sess] + 1

    def session_id() -> pa.Array:
        ids = ident.padded(session_no, 7, f"SS{tag}-")
        return pc.if_else(pa.array(no_session), pa.nulls(m, pa.string()), ids)

    sink.write(
        "web_events",
        f"web_events_{month}",
        {
            "event_id": lambda: ident.padded(id_no, 8, f"EV{tag}-"),
            "occurred_at": pa.array(t, pa.timestamp("s")),
            "session_id": session_id,
            "device_id": ident.labels(device_ids, s.device[sess]),
            "user_id": ident.labels(p.account_id, acc_row, acc_row < 0),
            "event_type": ident.labels(EVENT_TYPES, etype),
            "product_id": ident.labels(cat.product_id, product, product < 0),
            "search_query": query,
            "channel": ident.labels(["web", "app"], s.channel[sess]),
            "order_id": ident.labels(orders.order_id, order_row, order_row < 0),
        },
        codes,
    )
