"""CRM customer records (with duplicate sign-ups) and marketing-consent events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.generate import identity as ident
from c360.generate.calendar import DAY, Horizon
from c360.generate.defects import plant
from c360.generate.population import People
from c360.generate.writer import Sink

DUPLICATE_SHARE = 0.05  # second record with reformatted keys
HARD_DUPLICATE_SHARE = 0.01  # second record with new email and phone


@dataclass
class CrmRecords:
    person: np.ndarray  # person index of each record, in file order
    customer_ref: pa.Array
    signup_day: np.ndarray  # epoch day


def _nullify(arr: pa.Array, drop: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(drop), pa.nulls(len(arr), arr.type), arr)


def _name_variants(rng, first: pa.Array, last: pa.Array, kind: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """kind 0 as is, 1 typo in a name, 2 other transliteration, 3 swapped order, 4 upper/lower case."""
    typo_first = rng.random(len(kind)) < 0.5
    f_typo, l_typo = ident.name_typos(first, rng), ident.name_typos(last, rng)
    f = pc.if_else(pa.array((kind == 1) & typo_first), f_typo, first)
    la = pc.if_else(pa.array((kind == 1) & ~typo_first), l_typo, last)
    la = pc.if_else(pa.array(kind == 2), ident.alt_surnames(last), la)
    swap = pa.array(kind == 3)
    f, la = pc.if_else(swap, la, f), pc.if_else(swap, f, la)
    upper = pa.array((kind == 4) & (rng.random(len(kind)) < 0.5))
    lower = pa.array(kind == 4)
    f = pc.if_else(upper, pc.utf8_upper(f), pc.if_else(lower, pc.utf8_lower(f), f))
    la = pc.if_else(upper, pc.utf8_upper(la), pc.if_else(lower, pc.utf8_lower(la), la))
    return f, la


def write_crm(rng: np.random.Generator, p: People, horizon: Horizon, sink: Sink) -> CrmRecords:
    n = p.n
    start_day = horizon.start_s // DAY
    end_day = horizon.end_s // DAY
    acq_day = start_day + np.floor(p.acq).astype(np.int64)

    dup = np.flatnonzero(rng.random(n) < DUPLICATE_SHARE)
    hard = np.setdiff1d(np.flatnonzero(rng.random(n) < HARD_DUPLICATE_SHARE), dup)
    person = np.concatenate([np.arange(n), dup, hard])
    kind = np.concatenate([np.zeros(n, int), np.ones(len(dup), int), np.full(len(hard), 2)])
    m = len(person)
    idx = pa.array(person)

    first, last = p.first.take(idx), p.last.take(idx)
    name_kind = np.where(
        kind == 0,
        np.where(rng.random(m) < 0.08, 4, 0),
        np.where(kind == 1, ident.weighted(rng, [4, 2, 2, 1, 1], m), ident.weighted(rng, [1, 3, 3, 0, 1], m)),
    )
    first, last = _name_variants(rng, first, last, name_kind)

    email = ident.email_variants(p.email.take(idx), rng, clean_share=0.7)
    phone = ident.phone_variants(p.phone.take(idx), rng, clean_share=0.5)
    hard_rows = np.flatnonzero(kind == 2)
    if len(hard_rows):
        # A new address and number: only name, birth date and postcode tie it to the person.
        by = p.birth[hard].astype("datetime64[Y]").astype(int) + 1970
        new_email = ident.email_addresses(
            rng, p.first.take(pa.array(hard)), p.last.take(pa.array(hard)), by + 7
        )
        new_email = ident.join(pc.utf8_replace_slice(new_email, 0, 0, "new"), "")
        new_phone = ident.mobile_numbers(rng, len(hard) + n)
        new_phone = new_phone.filter(pc.invert(pc.is_in(new_phone, value_set=p.phone))).slice(0, len(hard))
        mask = np.zeros(m, dtype=bool)
        mask[hard_rows] = True
        email = pc.replace_with_mask(email, pa.array(mask), new_email)
        phone = pc.replace_with_mask(phone, pa.array(mask), new_phone)

    primary = kind == 0
    birth = pa.array(p.birth[person].astype("datetime64[D]"), pa.date32())
    birth = _nullify(birth, primary & (rng.random(m) < 0.04) | (kind == 1) & (rng.random(m) < 0.2))
    gender = np.where(p.male[person], "M", "F")
    gender = np.where(rng.random(m) < 0.03, "U", gender)
    gender = _nullify(pa.array(gender, pa.string()), rng.random(m) < 0.03)
    cities = [c[0] for c in ident.CITIES]
    regions = [c[1] for c in ident.CITIES]
    city = ident.take(cities, p.city[person])
    region = ident.take(regions, p.city[person])
    postcode = p.postcode.take(idx)

    signup = np.where(primary, acq_day[person], acq_day[person] + rng.integers(20, 500, m))
    signup = np.minimum(signup, end_day - 1)
    signup = np.maximum(signup, np.where(primary, signup, acq_day[person] + 1))
    channel = ident.take(["web", "app", "store"], ident.weighted(rng, [4, 3, 3], m))
    loyalty = _nullify(p.loyalty.take(idx), ~primary & (rng.random(m) < 0.6) | (kind == 2))
    nat = _nullify(
        p.national_id.take(idx),
        (primary & (rng.random(m) > 0.6)) | (kind == 1) & (rng.random(m) > 0.3) | (kind == 2),
    )
    bank = _nullify(p.bank_card.take(idx), (rng.random(m) > 0.4) | (kind == 2))
    updated = signup * DAY + (rng.random(m) * np.maximum(end_day - signup, 1) * DAY).astype(np.int64)
    updated = np.minimum(updated, horizon.end_s)

    order = np.lexsort((rng.random(m), signup))
    refs = ident.padded(np.arange(1, m + 1), 7, "CRM")
    cols = {
        "customer_ref": refs,
        "first_name": first.take(pa.array(order)),
        "last_name": last.take(pa.array(order)),
        "email": email.take(pa.array(order)),
        "phone": phone.take(pa.array(order)),
        "birth_date": birth.take(pa.array(order)),
        "gender": gender.take(pa.array(order)),
        "city": city.take(pa.array(order)),
        "region": region.take(pa.array(order)),
        "postcode": postcode.take(pa.array(order)),
        "signup_date": pa.array(signup[order].astype("datetime64[D]"), pa.date32()),
        "signup_channel": channel.take(pa.array(order)),
        "loyalty_card": loyalty.take(pa.array(order)),
        "national_id": nat.take(pa.array(order)),
        "bank_card": bank.take(pa.array(order)),
        "updated_at": pa.array(updated[order], pa.timestamp("s")),
    }
    codes = np.zeros(m, dtype=np.int8)
    floor = 3 if m >= 100 else 1
    bad_e = plant(
        rng, codes, "crm_customers", "invalid_email", pc.is_valid(cols["email"]).to_numpy(False), floor
    )
    bad_p = plant(
        rng, codes, "crm_customers", "invalid_phone", pc.is_valid(cols["phone"]).to_numpy(False), floor
    )
    for col, rows, fn in (("email", bad_e, ident.invalid_emails), ("phone", bad_p, ident.invalid_phones)):
        mask = np.zeros(m, dtype=bool)
        mask[rows] = True
        clean = (p.email if col == "email" else p.phone).take(pa.array(person[order][rows]))
        cols[col] = pc.replace_with_mask(cols[col], pa.array(mask), fn(clean, rng))
    sink.write("crm_customers", "crm_customers", cols, codes)
    return CrmRecords(person=person[order], customer_ref=refs, signup_day=signup[order])


def write_consent(
    rng: np.random.Generator, crm: CrmRecords, horizon: Horizon, sink: Sink
) -> tuple[pa.Array, np.ndarray]:
    """Opt-in/opt-out events per CRM record and channel; files hold them out of time order."""
    channels = ["email", "sms", "push", "phone"]
    has = rng.random((len(crm.person), 4)) < np.array([0.8, 0.6, 0.4, 0.2])
    rec, ch = np.nonzero(has)
    k = 1 + rng.poisson(0.8, len(rec))
    rec, ch = np.repeat(rec, k), np.repeat(ch, k)
    seq = np.arange(len(rec)) - np.repeat(np.cumsum(k) - k, k)
    lo = np.maximum(crm.signup_day[rec] * DAY, horizon.start_s) + 3600
    span = np.maximum(horizon.end_s - lo, 1)
    # Sorted uniform times per (record, channel): first at sign-up, later decisions spread out.
    u = rng.random(len(rec))
    u = np.where(seq == 0, u * 0.05, u)
    key = np.lexsort((u, np.repeat(np.arange(len(k)), k)))
    u_sorted = u[key]
    t = lo + (u_sorted * span).astype(np.int64)
    t = np.minimum(t + seq * 60, horizon.end_s - (np.repeat(k, k) - 1 - seq) * 60)
    first_granted = rng.random(len(k)) < 0.72
    flips = np.where(seq == 0, 0, rng.random(len(rec)) < 0.8)
    grp = np.repeat(np.arange(len(k)), k)
    n_flips = np.cumsum(flips) - np.repeat(np.cumsum(flips)[np.cumsum(k) - k] - flips[np.cumsum(k) - k], k)
    granted = first_granted[grp] ^ (n_flips % 2 == 1)
    source = ident.take(["web", "app", "store", "call_center"], ident.weighted(rng, [4, 4, 2, 1], len(rec)))
    ids = ident.padded(ident.unique_ints(rng, len(rec), 10**8, 10**9), 9, "CE")
    refs = crm.customer_ref.take(pa.array(rec))
    for month, m_lo, m_hi in horizon.months():
        rows = np.flatnonzero((t >= m_lo) & (t <= m_hi))
        rows = rng.permutation(rows)
        sel = pa.array(rows)
        sink.write(
            "marketing_consent",
            f"marketing_consent_{month}",
            {
                "consent_event_id": ids.take(sel),
                "customer_ref": refs.take(sel),
                "channel": ident.take(channels, ch[rows]),
                "granted": pa.array(granted[rows]),
                "occurred_at": pa.array(t[rows], pa.timestamp("s")),
                "source": source.take(sel),
            },
        )
    return ids, crm.person[rec]
