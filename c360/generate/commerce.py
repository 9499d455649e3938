"""Web-shop orders and lines, in-store receipts, and the simulated 90-day future of purchases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.generate import identity as ident
from c360.generate.calendar import DAY, Horizon, promo_window
from c360.generate.catalogue import CATEGORY_NAMES, REPURCHASE, Catalogue, choose_products, mix_hash, unit
from c360.generate.defects import plant
from c360.generate.order import lexsort
from c360.generate.population import People, seconds_of_day
from c360.generate.writer import CODE, Sink

PROMO_CODES = ["", "DOUBLE11", "618SALE", "CNYSALE"]
EVERYDAY_CODES = ["WELCOME10", "VIP20", "FLASH15", "NEWUSER"]
ONLINE_PAYMENTS = ["card", "alipay", "wechat_pay", "cod"]
STORE_PAYMENTS = ["cash", "card", "alipay", "wechat_pay"]
REPURCHASE_IDX = np.array([CATEGORY_NAMES.index(c) for c in sorted(REPURCHASE)])


@dataclass
class MonthOrders:
    """What clickstream and reviews need to know about a month's orders (file order)."""

    person: np.ndarray
    account: np.ndarray  # account index, always set (even when the file row lost it)
    t: np.ndarray
    channel: np.ndarray  # 0 web, 1 app
    order_id: pa.Array
    line_start: np.ndarray
    n_lines: np.ndarray
    line_product: np.ndarray  # real product of each line (before any planted defect)
    line_legit: np.ndarray  # line and its order are clean
    copy_of: np.ndarray  # -1, or the row index of the original this copy duplicates
    src_row: np.ndarray  # index into the month's purchase events (copies point at their original)


def promo_codes(rng, p: People, person: np.ndarray, t: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    dates = (t // DAY).astype("datetime64[D]")
    window = promo_window(dates)
    use = rng.random(len(t)) < np.where(window > 0, 0.15 + 0.5 * p.promo_sens[person], 0.04)
    code = pc.if_else(
        pa.array(window > 0),
        ident.take(PROMO_CODES, window),
        ident.take(EVERYDAY_CODES, rng.integers(0, len(EVERYDAY_CODES), len(t))),
    )
    return pc.if_else(pa.array(use), code, pa.nulls(len(t), pa.string())), use


def basket(rng, p: People, cat: Catalogue, person: np.ndarray, day: np.ndarray, bundles: bool):
    """Lines of each purchase: (order index per line, product, quantity)."""
    n = len(person)
    n_lines = np.minimum(1 + rng.poisson(1.5, n), 8)
    if bundles and cat.bundles:
        b_idx = (mix_hash(person, np.full(n, 7)) % np.uint64(len(cat.bundles))).astype(np.int64)
        b_size = np.array([len(b) for b in cat.bundles])[b_idx]
        in_bundle = rng.random(n) < 0.05 + 0.15 * unit(mix_hash(person, np.full(n, 11)))
        n_lines = np.where(in_bundle, b_size + rng.poisson(0.3, n), n_lines)
    order = np.repeat(np.arange(n), n_lines)
    j = np.arange(len(order)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    product = choose_products(rng, cat, person[order], day[order], p.pref_cum, p.value)
    if bundles and cat.bundles:
        table = np.full((len(cat.bundles), 3), -1)
        for i, b in enumerate(cat.bundles):
            table[i, : len(b)] = b
        take_b = in_bundle[order] & (j < b_size[order])
        product[take_b] = table[b_idx[order][take_b], j[take_b]]
    rep = np.isin(cat.category[product], REPURCHASE_IDX)
    qty = 1 + rng.poisson(0.15 + 0.5 * rep + 0.3 * p.value[person[order]])
    return n_lines, order, j, product, qty


def write_orders(
    rng,
    p: People,
    cat: Catalogue,
    month: str,
    month_no: int,
    m_hi: int,
    person: np.ndarray,
    t: np.ndarray,
    kind: np.ndarray,
    order_ids: pa.Array,
    copy_ids,
    second_account: np.ndarray,
    horizon: Horizon,
    sink: Sink,
) -> MonthOrders:
    n = len(person)
    floor = 1 if month_no % 8 == 1 else 0
    acc = p.primary_account[person]
    use2 = (second_account[person] >= 0) & (rng.random(n) < 0.35)
    acc = np.where(use2, second_account[person], acc)
    day = (t - horizon.start_s) // DAY
    n_lines, order, j, product, qty = basket(rng, p, cat, person, day, bundles=True)
    promo, used = promo_codes(rng, p, person, t)
    rate = np.where(used, rng.uniform(0.05, 0.3, n), 0.0)
    price = cat.price[product]
    discount = np.round(qty * price * rate[order], 2)
    amount = np.round(np.bincount(order, qty * price - discount, minlength=n), 2)

    codes = np.zeros(n, dtype=np.int8)
    originals = plant(rng, codes.copy(), "ecommerce_orders", "duplicate", t + 30 <= m_hi, floor)
    protect = np.zeros(n, dtype=bool)
    protect[originals] = True
    plant(rng, codes, "ecommerce_orders", "negative_amount", ~protect, floor)
    plant(rng, codes, "ecommerce_orders", "missing_required", ~protect, floor)
    plant(rng, codes, "ecommerce_orders", "future_timestamp", ~protect, floor)

    # Extra copies: same account, items and amount, 1-30 s later, new id.
    k = len(originals)
    rows = np.concatenate([np.arange(n), originals])
    copy_of = np.concatenate([np.full(n, -1), originals])
    t_all = np.concatenate([t, t[originals] + rng.integers(1, 31, k)])
    codes = np.concatenate([codes, np.full(k, CODE["duplicate"], dtype=np.int8)])
    ids = pa.concat_arrays([order_ids, copy_ids(k)]) if k else order_ids
    file_order = lexsort((t_all,))
    rows, copy_of, t_all, codes = rows[file_order], copy_of[file_order], t_all[file_order], codes[file_order]
    ids = ids.take(pa.array(file_order))
    pos_of = np.empty(len(file_order), dtype=np.int64)
    pos_of[file_order] = np.arange(len(file_order))
    copy_of = np.where(copy_of >= 0, pos_of[np.maximum(copy_of, 0)], -1)
    t_written = t_all.copy()
    fut_rows = codes == CODE["future_timestamp"]
    # 2-5 years after the data's end (see clickstream.py), so the defect stays a future timestamp.
    t_written[fut_rows] = (
        horizon.end_s + 1 + rng.integers(2 * 365, 5 * 365, fut_rows.sum()) * DAY + t_written[fut_rows] % DAY
    )
    m = len(rows)
    sel = pa.array(rows)
    amount_w = amount[rows]
    amount_w = np.where(codes == CODE["negative_amount"], -np.maximum(amount_w, 1.0), amount_w)
    account_col = ident.labels(p.account_id, acc[rows], codes == CODE["missing_required"])
    email = ident.email_variants(p.account_email.take(pa.array(acc[rows])), rng, clean_share=0.75)
    phone = ident.phone_variants(p.phone.take(pa.array(person[rows])), rng)
    phone = pc.if_else(pa.array(rng.random(m) < 0.2), pa.nulls(m, pa.string()), phone)
    age = horizon.end_s - t_all
    status = np.where(age > 10 * DAY, 3, ident.weighted(rng, [2, 3, 4, 1], m))
    fading = p.fading(person[rows], (t_all - horizon.start_s) / DAY)
    u = rng.random(m)
    status = np.where(u < 0.02, 4, np.where(u < 0.05 + 0.15 * fading, 5, status))
    status = np.where(copy_of >= 0, status[np.maximum(copy_of, 0)], status)
    pay = np.where(rng.random(m) < 0.8, p.pay_online[person[rows]], rng.integers(0, 4, m))
    postcode = p.postcode.take(pa.array(person[rows]))
    other = ident.padded(rng.integers(10, 86, m) * 10000 + rng.integers(0, 100, m) * 10, 6)
    postcode = pc.if_else(pa.array(rng.random(m) < 0.08), other, postcode)
    rel = sink.write(
        "ecommerce_orders",
        f"ecommerce_orders_{month}",
        {
            "order_id": ids,
            "account_id": account_col,
            "email": email,
            "phone": phone,
            "ordered_at": pa.array(t_written, pa.timestamp("s")),
            "channel": ident.labels(["web", "app"], kind[rows]),
            "status": ident.labels(
                ["placed", "paid", "shipped", "delivered", "cancelled", "returned"], status
            ),
            "payment_method": ident.labels(ONLINE_PAYMENTS, pay),
            "promo_code": promo.take(sel),
            "amount": pa.array(amount_w),
            "currency": ident.labels(["CNY"], np.zeros(m, dtype=np.int32)),
            "shipping_postcode": postcode,
        },
        codes,
    )
    del rel

    # Lines, in file order of their orders.
    line_start0 = np.cumsum(n_lines) - n_lines
    nl = n_lines[rows]
    li = np.repeat(line_start0[rows], nl) + (np.arange(nl.sum()) - np.repeat(np.cumsum(nl) - nl, nl))
    line_order_row = np.repeat(np.arange(m), nl)
    l_codes = np.zeros(len(li), dtype=np.int8)
    order_bad = np.isin(
        codes[line_order_row], [CODE["negative_amount"], CODE["missing_required"], CODE["future_timestamp"]]
    )
    l_codes[order_bad] = CODE["orphan_order"]
    l_codes[copy_of[line_order_row] >= 0] = CODE["duplicate"]
    is_original = np.zeros(m, dtype=bool)
    is_original[copy_of[copy_of >= 0]] = True
    clean = ~is_original[line_order_row]
    lfloor = floor
    miss = plant(rng, l_codes, "ecommerce_order_items", "missing_required", clean, lfloor)
    unknown = plant(rng, l_codes, "ecommerce_order_items", "unknown_product", clean, lfloor)
    nonpos = plant(rng, l_codes, "ecommerce_order_items", "non_positive_quantity", clean, lfloor)
    prod_col = cat.product_id.take(pa.array(product[li]))
    mask = np.zeros(len(li), dtype=bool)
    mask[unknown] = True
    prod_col = pc.replace_with_mask(
        prod_col, pa.array(mask), ident.padded(rng.integers(1, 99_999, len(unknown)), 5, "P0")
    )
    mask[:] = False
    mask[miss] = True
    prod_col = pc.if_else(pa.array(mask), pa.nulls(len(li), pa.string()), prod_col)
    q = qty[li].copy()
    q[nonpos] = -rng.integers(0, 3, len(nonpos))
    line_no = j[li] + 1

    def item_ids() -> pa.Array:
        return ident.join(ids.take(pa.array(line_order_row)), "-", pc.cast(pa.array(line_no), pa.string()))

    sink.write(
        "ecommerce_order_items",
        f"ecommerce_order_items_{month}",
        {
            "order_item_id": item_ids,
            "order_id": ident.labels(ids, line_order_row),
            "line_no": pa.array(line_no),
            "product_id": prod_col,
            "quantity": pa.array(q),
            "unit_price": pa.array(price[li]),
            "discount": pa.array(discount[li]),
        },
        l_codes,
    )
    return MonthOrders(
        person=person[rows],
        account=acc[rows],
        t=t_all,
        channel=kind[rows],
        order_id=ids,
        line_start=np.cumsum(nl) - nl,
        n_lines=nl,
        line_product=product[li],
        line_legit=l_codes == 0,
        copy_of=copy_of,
        src_row=rows,
    )


def write_pos(
    rng,
    p: People,
    cat: Catalogue,
    month: str,
    month_no: int,
    m_lo: int,
    m_hi: int,
    person: np.ndarray,
    t: np.ndarray,
    n_stores: int,
    horizon: Horizon,
    sink: Sink,
) -> tuple[pa.Array, np.ndarray]:
    """Receipts of known persons plus anonymous walk-ins; returns (transaction ids, person or -1)."""
    n_walk = rng.poisson(0.11 * len(person) + 0.2)
    walk_day = rng.integers(m_lo // DAY, m_hi // DAY + 1, n_walk)
    walk_t = walk_day * DAY + (rng.uniform(9, 21.5, n_walk) * 3600).astype(np.int64)
    who = np.concatenate([person, np.full(n_walk, -1)])
    ts = np.concatenate([t, walk_t])
    order = lexsort((ts,))
    who, ts = who[order], ts[order]
    n = len(who)
    known = who >= 0
    shopper = np.where(known, who, rng.integers(0, p.n, n))  # walk-ins borrow a random taste
    store = np.where(known & (rng.random(n) < 0.85), p.home_store[shopper], rng.integers(0, n_stores, n))
    day = (ts - horizon.start_s) // DAY
    _, line_r, j, product, qty = basket(rng, p, cat, shopper, day, bundles=False)
    tx = ident.padded(np.arange(1, n + 1), 6, f"TX{month.replace('-', '')}")
    has_card = pc.is_valid(p.loyalty.take(pa.array(shopper))).to_numpy(zero_copy_only=False)
    by_card = known & has_card & (rng.random(n) < 0.9)
    by_phone = known & ~by_card
    card = pc.if_else(pa.array(by_card), p.loyalty.take(pa.array(shopper)), pa.nulls(n, pa.string()))
    phone = pc.if_else(
        pa.array(by_phone),
        ident.phone_variants(p.phone.take(pa.array(shopper)), rng, 0.3),
        pa.nulls(n, pa.string()),
    )
    promo, _ = promo_codes(rng, p, shopper, ts)
    pay = np.where(rng.random(n) < 0.75, p.pay_store[shopper], rng.integers(0, 4, n))
    rsel = pa.array(line_r)
    m = len(line_r)
    codes = np.zeros(m, dtype=np.int8)
    floor = 1 if month_no % 8 == 3 else 0
    neg = plant(rng, codes, "pos_transactions", "negative_amount", None, floor)
    unknown = plant(rng, codes, "pos_transactions", "unknown_product", None, floor)
    plant(rng, codes, "pos_transactions", "malformed_line", None, floor)
    unit_price = cat.price[product].copy()
    unit_price[neg] = -unit_price[neg]
    prod_col = cat.product_id.take(pa.array(product))
    mask = np.zeros(m, dtype=bool)
    mask[unknown] = True
    prod_col = pc.replace_with_mask(
        prod_col, pa.array(mask), ident.padded(rng.integers(1, 99_999, len(unknown)), 5, "P0")
    )

    def line_ids() -> pa.Array:
        return ident.join(tx.take(rsel), "-", pc.cast(pa.array(j + 1), pa.string()))

    sink.write(
        "pos_transactions",
        f"pos_transactions_{month}",
        {
            "pos_line_id": line_ids,
            "transaction_id": ident.labels(tx, line_r),
            "line_no": pa.array(j + 1),
            "store_id": ident.labels(ident.padded(np.arange(1, n_stores + 1), 3, "ST"), store[line_r]),
            "occurred_at": pa.array(ts[line_r], pa.timestamp("s")),
            "loyalty_card": card.take(rsel),
            "phone": phone.take(rsel),
            "product_id": prod_col,
            "quantity": pa.array(qty),
            "unit_price": pa.array(unit_price),
            "payment_method": ident.labels(STORE_PAYMENTS, pay[line_r]),
            "promo_code": promo.take(rsel),
        },
        codes,
    )
    return tx, who


def future_purchases(
    rng, p: People, cat: Catalogue, horizon: Horizon, person: np.ndarray, day: np.ndarray, count: np.ndarray
) -> pa.Table:
    """Lines of the purchases simulated for the 90 days after the end date (truth only)."""
    person, day = np.repeat(person, count), np.repeat(day, count)
    abs_day = horizon.days + day
    _, order, _, product, qty = basket(rng, p, cat, person, abs_day, bundles=True)
    t = horizon.end_s + 1 + day * DAY + seconds_of_day(rng, p.habit[person])
    ts = t[order]
    idx = lexsort((product, ts, person[order]))
    return pa.table(
        {
            "person_id": p.person_id.take(pa.array(person[order][idx])),
            "ordered_at": pc.cast(pa.array(ts[idx], pa.timestamp("s")), pa.string()),
            "product_id": cat.product_id.take(pa.array(product[idx])),
            "quantity": pa.array(qty[idx]),
            "amount": pa.array(np.round(qty[idx] * cat.price[product[idx]], 2)),
        }
    )
