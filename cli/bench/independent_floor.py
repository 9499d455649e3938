"""The independent floor: customer_360 rebuilt from the landing files by a short plain-DuckDB
script that shares no code with the platform.

The floor (``cli.bench.floor``) runs the platform's own compiled dbt SQL and loader row rules, so
it can only show the cost of the orchestration around them, never waste inside them. This script
is written from the landing contract and the models' documented meaning instead: its own schema
table, its own row rules, its own identity graph (records linked by the keys they share, solved
with scipy's connected components on integers), its own marts SQL. Nothing is imported from
``c360`` (no contracts, loader, pseudonymisation or dbt): if the platform's SQL does something
slow or wrong, this script does not inherit it, and ``compare`` shows where the two disagree.

Linking keys are the normalised plain values (lower-cased email, 11-digit mobile, upper-cased
loyalty card) rather than the platform's HMAC pseudonyms of them: the same equality, so the same
graph. Encryption, masking, quarantine and the load log are left out (no mart column needs them).

Columns built (``COLUMNS``, 45): every column of ``marts.customer_360`` that comes from the landing
data by SQL alone: the identity-level counts and dates (``COLUMNS_BEFORE_BEHAVIOUR``, the 29 this
floor built until 2026-12-06) and the behaviour, RFM and last-seen columns (``BEHAVIOUR_COLUMNS``:
channel and time-of-day mix, favourite payment, promotion use, top categories, web sessions cut from
the clickstream, RFM scores and segment). Not built: the model outputs (CLV, churn, segments,
sentiment) and the masked contacts (they need the platform's keys).

Run as ``python -m cli.bench.independent_floor``; writes its timings (and the comparison with a
platform warehouse, if given) as JSON.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime
from pathlib import Path

import click
import duckdb
import numpy as np

# DuckDB imports pandas to scan an Arrow table; imported here, with scipy, so that a one-off
# interpreter cost (seconds on a busy machine) is not timed as floor work.
import pandas  # noqa: F401
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# source -> (key, [(column, type, required)], event-time columns). Written from the landing
# contract's documentation, not imported from it.
V, TS, D, DBL, INT, BOOL = "VARCHAR", "TIMESTAMP", "DATE", "DOUBLE", "INTEGER", "BOOLEAN"
SCHEMA: dict[str, tuple[str, list[tuple[str, str, bool]], tuple[str, ...]]] = {
    "products": (
        "product_id",
        [
            ("product_id", V, 1),
            ("product_name", V, 1),
            ("category", V, 1),
            ("brand", V, 0),
            ("price", DBL, 1),
            ("launched_at", D, 0),
            ("discontinued", BOOL, 0),
        ],
        (),
    ),
    "crm_customers": (
        "customer_ref",
        [
            ("customer_ref", V, 1),
            ("first_name", V, 0),
            ("last_name", V, 0),
            ("email", V, 0),
            ("phone", V, 0),
            ("birth_date", D, 0),
            ("gender", V, 0),
            ("city", V, 0),
            ("region", V, 0),
            ("postcode", V, 0),
            ("signup_date", D, 1),
            ("signup_channel", V, 0),
            ("loyalty_card", V, 0),
            ("national_id", V, 0),
            ("bank_card", V, 0),
            ("updated_at", TS, 1),
        ],
        ("updated_at",),
    ),
    "ecommerce_orders": (
        "order_id",
        [
            ("order_id", V, 1),
            ("account_id", V, 1),
            ("email", V, 0),
            ("phone", V, 0),
            ("ordered_at", TS, 1),
            ("channel", V, 1),
            ("status", V, 1),
            ("payment_method", V, 0),
            ("promo_code", V, 0),
            ("amount", DBL, 1),
            ("currency", V, 0),
            ("shipping_postcode", V, 0),
        ],
        ("ordered_at",),
    ),
    "ecommerce_order_items": (
        "order_item_id",
        [
            ("order_item_id", V, 1),
            ("order_id", V, 1),
            ("line_no", INT, 1),
            ("product_id", V, 1),
            ("quantity", INT, 1),
            ("unit_price", DBL, 1),
            ("discount", DBL, 0),
        ],
        (),
    ),
    "web_events": (
        "event_id",
        [
            ("event_id", V, 1),
            ("occurred_at", TS, 1),
            ("session_id", V, 1),
            ("device_id", V, 1),
            ("user_id", V, 0),
            ("event_type", V, 1),
            ("product_id", V, 0),
            ("search_query", V, 0),
            ("channel", V, 1),
            ("order_id", V, 0),
        ],
        ("occurred_at",),
    ),
    "pos_transactions": (
        "pos_line_id",
        [
            ("pos_line_id", V, 1),
            ("transaction_id", V, 1),
            ("line_no", INT, 1),
            ("store_id", V, 1),
            ("occurred_at", TS, 1),
            ("loyalty_card", V, 0),
            ("phone", V, 0),
            ("product_id", V, 1),
            ("quantity", INT, 1),
            ("unit_price", DBL, 1),
            ("payment_method", V, 0),
            ("promo_code", V, 0),
        ],
        ("occurred_at",),
    ),
    "service_tickets": (
        "ticket_id",
        [
            ("ticket_id", V, 1),
            ("opened_at", TS, 1),
            ("closed_at", TS, 0),
            ("channel", V, 1),
            ("email", V, 0),
            ("phone", V, 0),
            ("category", V, 1),
            ("text", V, 0),
            ("resolution", V, 0),
        ],
        ("opened_at",),
    ),
    "product_reviews": (
        "review_id",
        [
            ("review_id", V, 1),
            ("account_id", V, 1),
            ("product_id", V, 1),
            ("order_id", V, 0),
            ("score", INT, 1),
            ("text", V, 0),
            ("created_at", TS, 1),
        ],
        ("created_at",),
    ),
    "marketing_consent": (
        "consent_event_id",
        [
            ("consent_event_id", V, 1),
            ("customer_ref", V, 1),
            ("channel", V, 1),
            ("granted", BOOL, 1),
            ("occurred_at", TS, 1),
            ("source", V, 0),
        ],
        ("occurred_at",),
    ),
}
# Products first: order lines and till lines naming an unknown product are refused.
ORDER = ("products", *(s for s in SCHEMA if s != "products"))

WS = "' \t\n\r\x0b\x0c\u00a0\u3000'"
EMAIL = (
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,}"
)


def email_sql(c: str) -> str:
    return f"(case when regexp_full_match(trim({c}, {WS}), '{EMAIL}') then lower(trim({c}, {WS})) end)"


def phone_sql(c: str) -> str:
    d = f"regexp_replace({c}, '[^0-9]', '', 'g')"
    # +86 / 0086 country prefixes dropped, then an 11-digit mobile starting with 1.
    d = f"regexp_replace({d}, '^(0086|86)(1[0-9]{{10}})$', '\\2')"
    return f"(case when regexp_full_match({d}, '1[0-9]{{10}}') then {d} end)"


def loyalty_sql(c: str) -> str:
    t = f"trim({c}, {WS})"
    return f"(case when regexp_full_match({t}, '[\\x00-\\x7f]*') then nullif(upper(regexp_replace({t}, '[ \\-]', '', 'g')), '') end)"


NAME_VARIANTS = {
    "chang": "zhang",
    "hsu": "xu",
    "chou": "zhou",
    "chien": "qian",
    "hsieh": "xie",
    "kuo": "guo",
    "tsai": "cai",
    "tseng": "zeng",
    "chao": "zhao",
    "liou": "liu",
    "lee": "li",
    "wong": "wang",
    "hwang": "huang",
    "tsao": "cao",
    "teng": "deng",
    "chiang": "jiang",
    "ho": "he",
    "lo": "luo",
}
FUZZY_THRESHOLD = 0.92

# The 29 columns this floor built until 2026-12-06 (core_s times them).
COLUMNS_BEFORE_BEHAVIOUR = (
    "crm_records",
    "gender",
    "age_band",
    "city",
    "region",
    "signup_channel",
    "signup_date",
    "tenure_days",
    "orders_online",
    "orders_in_store",
    "orders_total",
    "revenue",
    "avg_order_value",
    "first_purchase_at",
    "last_purchase_at",
    "previous_purchase_at",
    "tickets",
    "open_tickets",
    "complaints",
    "open_complaints",
    "complaints_90d",
    "last_contact_at",
    "reviews",
    "avg_review_score",
    "consent_email",
    "consent_sms",
    "consent_push",
    "consent_phone",
    "as_of_date",
)
BEHAVIOUR_COLUMNS = (
    "top_category",
    "top_categories",
    "share_web",
    "share_app",
    "share_store",
    "preferred_channel",
    "preferred_time_of_day",
    "preferred_payment_method",
    "promotion_sensitivity",
    "web_sessions",
    "browse_to_buy_ratio",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "last_seen_at",
)
COLUMNS = COLUMNS_BEFORE_BEHAVIOUR + BEHAVIOUR_COLUMNS
MONEY = ("revenue", "avg_order_value", "avg_review_score")


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _files(landing: Path, source: str) -> list[Path]:
    folder = landing / source
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".parquet"))


def _scan(path: Path, columns: list[tuple[str, str, bool]]) -> str | None:
    """SELECT of one file's rows in the schema's columns (absent optional ones null), numbered in
    file order; None for a file lacking a required column (refused whole)."""
    types = {n: t for n, t, _ in columns}
    if path.suffix.lower() == ".parquet":
        header = [
            r[0] for r in duckdb.sql(f"describe select * from read_parquet({_q(str(path))})").fetchall()
        ]
        scan = f"read_parquet({_q(str(path))})"
        cast = True
    else:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            header = next(csv.reader(fh), [])
        spec = ", ".join(f"{_q(h)}: {_q(types.get(h, V))}" for h in header)
        # Lines that do not parse (wrong column count, a bad date) are dropped, as malformed.
        # store_rejects rather than ignore_errors: DuckDB 2.0's parallel reader with ignore_errors
        # silently drops the rest of a file after a line with stray characters after a quote.
        scan = (
            f"read_csv({_q(str(path))}, header = true, columns = {{{spec}}}, auto_detect = false, "
            "delim = ',', quote = '\"', escape = '\"', strict_mode = true, store_rejects = true)"
        )
        cast = False
    if any(req and n not in header for n, _, req in columns):
        return None
    cols = ", ".join(
        (f'try_cast("{n}" as {t}) as "{n}"' if cast else f'"{n}"')
        if n in header
        else f'cast(null as {t}) as "{n}"'
        for n, t, _ in columns
    )
    return f"select row_number() over () as _line, {cols} from {scan}"


def load(con, landing: Path, now: datetime) -> dict[str, int]:
    """Every source's valid rows into table ``<source>``; returns row counts."""
    rows = {}
    for source in ORDER:
        key, columns, event_time = SCHEMA[source]
        scans = [
            f"select {i} as _file, * from ({sql})"
            for i, p in enumerate(_files(landing, source))
            if (sql := _scan(p, columns)) is not None
        ]
        if not scans:
            empty = ", ".join(f'cast(null as {t}) as "{n}"' for n, t, _ in columns)
            con.execute(f"create or replace table {source} as select {empty} where false")
            rows[source] = 0
            continue
        con.execute(f"create or replace temp table _parsed as {' union all '.join(scans)}")
        names = {n for n, _, _ in columns}
        bad = [
            f'"{n}" is null' + (f" or trim(\"{n}\") = ''" if t == V else "") for n, t, req in columns if req
        ]
        if "email" in names:
            bad.append(f"(nullif(trim(email), '') is not null and {email_sql('email')} is null)")
        if "phone" in names:
            bad.append(f"(nullif(trim(phone), '') is not null and {phone_sql('phone')} is null)")
        bad += [f'"{c}" < 0' for c in ("amount", "unit_price", "price") if c in names]
        if "quantity" in names:
            bad.append("quantity <= 0")
        bad += [f"\"{c}\" > timestamp '{now:%Y-%m-%d %H:%M:%S}'" for c in event_time]
        if source in ("ecommerce_order_items", "pos_transactions"):
            bad.append("product_id not in (select product_id from products)")
        if source == "ecommerce_order_items":
            bad.append("order_id not in (select order_id from ecommerce_orders)")
        # Files load one after another: a row counts if it breaks no rule, is the first of its key
        # in its file (valid or not), and no earlier file loaded the key.
        con.execute(
            f"""
            create or replace table {source} as
            with ranked as (
                select *, row_number() over (partition by _file, "{key}" order by _line) as _nth from _parsed
            ),
            candidates as (
                select * from ranked where _nth = 1 and not coalesce({" or ".join(bad)}, false)
            )
            select * exclude (_line, _nth) from candidates
            qualify _file = min(_file) over (partition by "{key}")
            """
        )
        rows[source] = con.execute(f"select count(*) from {source}").fetchone()[0]
    con.execute("drop table if exists _parsed")
    # After every source, not after the order lines: a landing without order lines (CDNOW's
    # orders-only export) still has re-sent orders, and their lines' basket is then empty on both.
    drop_resubmitted_orders(con)
    rows["ecommerce_order_items"] = con.execute("select count(*) from ecommerce_order_items").fetchone()[0]
    rows["ecommerce_orders"] = con.execute("select count(*) from ecommerce_orders").fetchone()[0]
    return rows


def drop_resubmitted_orders(con) -> None:
    """An order sent again (same account, amount and basket within 60 s of an earlier one) is
    counted once. A time of exactly midnight is a date-only export and never a re-submission."""
    con.execute(
        """
        create or replace temp table _resent as
        with o as (
            select o.order_id, o.account_id, o.amount, o.ordered_at,
                   (select list(product_id || 'x' || quantity order by product_id, quantity)
                    from ecommerce_order_items i where i.order_id = o.order_id) as basket
            from ecommerce_orders o
            where o.ordered_at <> date_trunc('day', o.ordered_at)
        )
        select distinct b.order_id from o a join o b
          on a.account_id = b.account_id and a.amount = b.amount and a.basket is not distinct from b.basket
         and b.ordered_at between a.ordered_at and a.ordered_at + interval 60 second
         and (b.ordered_at, b.order_id) > (a.ordered_at, a.order_id)
        """
    )
    con.execute("delete from ecommerce_orders where order_id in (select order_id from _resent)")
    con.execute("delete from ecommerce_order_items where order_id in (select order_id from _resent)")


def _name_key(first: str, last: str) -> str:
    tokens = f"regexp_split_to_array(trim(regexp_replace(lower(coalesce({first}, '') || ' ' || coalesce({last}, '')), '[^a-z ]', '', 'g')), '\\s+')"
    cases = " ".join(f"when '{a}' then '{b}'" for a, b in NAME_VARIANTS.items())
    return f"array_to_string(list_sort(list_transform({tokens}, lambda t: case t {cases} else t end)), ' ')"


def link_identities(con) -> int:
    """Table ``record_person(source, record_id, person, has_keys)``: each identity record's
    connected component. Records and their keys are the nodes of one graph (a record is joined to
    each key it holds, and two CRM records to each other when name, birth date and postcode agree);
    scipy labels its components."""
    con.execute(
        f"""
        create or replace temp table _records as
        with r as (
            select 'crm_customers' as source, customer_ref as record_id,
                   ['crm:' || customer_ref, 'email:' || {email_sql("email")}, 'phone:' || {phone_sql("phone")},
                    'loyalty:' || {loyalty_sql("loyalty_card")}] as k
            from crm_customers
            union all
            select 'ecommerce_orders', order_id,
                   ['account:' || account_id, 'email:' || {email_sql("email")}, 'phone:' || {phone_sql("phone")}]
            from ecommerce_orders
            union all
            select 'web_events', device_id, list(distinct 'account:' || nullif(trim(user_id), ''))
            from web_events group by device_id
            union all
            select 'pos_transactions', transaction_id,
                   ['loyalty:' || any_value({loyalty_sql("loyalty_card")}), 'phone:' || any_value({phone_sql("phone")})]
            from pos_transactions group by transaction_id
            union all
            select 'service_tickets', ticket_id, ['email:' || {email_sql("email")}, 'phone:' || {phone_sql("phone")}]
            from service_tickets
            union all
            select 'product_reviews', review_id, ['account:' || account_id] from product_reviews
            union all
            select 'marketing_consent', consent_event_id, ['crm:' || customer_ref] from marketing_consent
        )
        select (row_number() over ()) - 1 as node, source, record_id, list_filter(k, lambda x: x is not null) as keys
        from r
        """
    )
    n = con.execute("select count(*) from _records").fetchone()[0]
    edges = con.execute(
        f"""
        with held as (select node, unnest(keys) as k from _records),
        key_nodes as (select k, {n} + (row_number() over ()) - 1 as key_node from (select distinct k from held)),
        crm as (
            select r.node, {_name_key("c.first_name", "c.last_name")} as name_key, c.birth_date, trim(c.postcode) as postcode
            from _records r join crm_customers c on r.source = 'crm_customers' and r.record_id = c.customer_ref
        ),
        fuzzy as (
            select a.node as a, b.node as b from crm a join crm b
              on a.postcode = b.postcode and a.birth_date = b.birth_date and a.node < b.node
            where a.name_key <> '' and jaro_winkler_similarity(a.name_key, b.name_key) >= {FUZZY_THRESHOLD}
        )
        select h.node as a, kn.key_node as b from held h join key_nodes kn using (k)
        union all select a, b from fuzzy
        """
    ).fetchnumpy()
    size = max(n, int(edges["b"].max()) + 1 if len(edges["b"]) else 0)
    graph = coo_matrix(
        (np.ones(len(edges["a"]), dtype=np.int8), (edges["a"].astype(np.int64), edges["b"].astype(np.int64))),
        shape=(size, size),
    )
    _, labels = connected_components(graph, directed=False)
    con.register("_labels", pa.table({"node": np.arange(n, dtype=np.int64), "person": labels[:n]}))
    con.execute(
        """
        create or replace table record_person as
        select r.source, r.record_id, l.person, len(r.keys) > 0 as has_keys
        from _records r join _labels l using (node)
        """
    )
    con.unregister("_labels")
    return n


def build_customer_360(con) -> int:
    """Table ``customer_360``: one row per person holding at least one key, keyed by ``person``."""
    con.execute(
        """
        create or replace temp table _known as
        select person from record_person group by person having bool_or(has_keys)
        """
    )
    # Every purchase of a known person, with what the behaviour columns need too (read twice).
    con.execute(
        """
        create or replace temp table _purchases as
        with rec as (select * from record_person where person in (select person from _known))
        select r.person, 'order:' || o.order_id as id, lower(trim(o.channel)) as channel, o.ordered_at as bought_at,
               o.amount as amount_double, lower(trim(o.payment_method)) as payment_method,
               nullif(trim(o.promo_code), '') is not null as used_promo
        from ecommerce_orders o join rec r on r.source = 'ecommerce_orders' and r.record_id = o.order_id
        where lower(trim(o.status)) <> 'cancelled'
        union all
        select r.person, 'pos:' || p.transaction_id, 'store', min(p.occurred_at), sum(p.quantity * p.unit_price),
               min(lower(trim(p.payment_method))), bool_or(nullif(trim(p.promo_code), '') is not null)
        from pos_transactions p join rec r on r.source = 'pos_transactions' and r.record_id = p.transaction_id
        group by r.person, p.transaction_id
        """
    )
    con.execute(
        """
        create or replace table customer_360 as
        with known as (select person from _known),
        rec as (select * from record_person where person in (select person from known)),
        purchases as (select * exclude (amount_double), cast(amount_double as decimal(18, 2)) as amount from _purchases),
        as_of as (select cast(max(bought_at) as date) + 1 as as_of_date from purchases),
        value as (
            select person,
                   count(*) filter (where channel in ('web', 'app')) as orders_online,
                   count(*) filter (where channel = 'store') as orders_in_store,
                   count(*) as orders_total,
                   cast(sum(amount) as double) as revenue,
                   round(cast(sum(amount) / count(*) as double), 2) as avg_order_value,
                   min(bought_at) as first_purchase_at,
                max(bought_at) as last_purchase_at,
                   (list(bought_at order by bought_at desc, id desc))[2]
                       as previous_purchase_at
            from purchases group by person
        ),
        profile as (
            -- A tie on updated_at goes to the larger customer_ref, as in customer_360.
            select r.person, count(*) as crm_records,
                   arg_max(case upper(trim(c.gender)) when 'F' then 'F' when 'M' then 'M' else 'U' end, (c.updated_at, c.customer_ref))
                       as gender,
                   arg_max(c.birth_date, (c.updated_at, c.customer_ref)) as birth_date,
                   arg_max(trim(c.city), (c.updated_at, c.customer_ref)) as city,
                   arg_max(trim(c.region), (c.updated_at, c.customer_ref)) as region,
                   arg_max(lower(trim(c.signup_channel)), (c.updated_at, c.customer_ref)) as signup_channel,
                   min(c.signup_date) as signup_date
            from crm_customers c join rec r on r.source = 'crm_customers' and r.record_id = c.customer_ref
            group by r.person
        ),
        service as (
            select r.person, count(*) as tickets,
                   count(*) filter (where t.closed_at is null) as open_tickets,
                   count(*) filter (where lower(trim(t.category)) = 'complaint') as complaints,
                   count(*) filter (where lower(trim(t.category)) = 'complaint' and t.closed_at is null)
                       as open_complaints,
                   count(*) filter (where lower(trim(t.category)) = 'complaint'
                                    and t.opened_at >= a.as_of_date - interval 90 days) as complaints_90d,
                   max(greatest(t.opened_at, t.closed_at)) as last_contact_at
            from service_tickets t join rec r on r.source = 'service_tickets' and r.record_id = t.ticket_id
            cross join as_of a
            group by r.person
        ),
        voice as (
            select r.person, count(*) as reviews, round(avg(v.score), 2) as avg_review_score,
                   max(v.created_at) as last_review_at
            from product_reviews v join rec r on r.source = 'product_reviews' and r.record_id = v.review_id
            group by r.person
        ),
        -- The latest decision per channel; CRM records of one person merged.
        consent as (
            select person, bool_or(granted) filter (where channel = 'email') as email,
                   bool_or(granted) filter (where channel = 'sms') as sms,
                   bool_or(granted) filter (where channel = 'push') as push,
                   bool_or(granted) filter (where channel = 'phone') as phone
            from (
                select r.person, lower(trim(e.channel)) as channel,
                       arg_max(e.granted, (e.occurred_at, e.consent_event_id)) as granted
                from marketing_consent e
                join rec r on r.source = 'crm_customers' and r.record_id = e.customer_ref
                group by all
            )
            group by person
        )
        select k.person, coalesce(p.crm_records, 0) as crm_records, p.gender,
               case when p.birth_date is null then 'unknown'
                    when date_diff('year', p.birth_date, a.as_of_date) < 25 then '18-24'
                    when date_diff('year', p.birth_date, a.as_of_date) < 35 then '25-34'
                    when date_diff('year', p.birth_date, a.as_of_date) < 45 then '35-44'
                    when date_diff('year', p.birth_date, a.as_of_date) < 55 then '45-54'
                    else '55+' end as age_band,
               p.city, p.region, p.signup_channel, p.signup_date,
               date_diff('day', p.signup_date, a.as_of_date) as tenure_days,
               coalesce(v.orders_online, 0) as orders_online, coalesce(v.orders_in_store, 0) as orders_in_store,
               coalesce(v.orders_total, 0) as orders_total, coalesce(v.revenue, 0) as revenue, v.avg_order_value,
               v.first_purchase_at, v.last_purchase_at, v.previous_purchase_at,
               coalesce(s.tickets, 0) as tickets, coalesce(s.open_tickets, 0) as open_tickets,
               coalesce(s.complaints, 0) as complaints, coalesce(s.open_complaints, 0) as open_complaints,
               coalesce(s.complaints_90d, 0) as complaints_90d, s.last_contact_at,
               coalesce(o.reviews, 0) as reviews, o.avg_review_score, o.last_review_at,
               coalesce(c.email, false) as consent_email, coalesce(c.sms, false) as consent_sms,
               coalesce(c.push, false) as consent_push, coalesce(c.phone, false) as consent_phone,
               a.as_of_date
        from known k cross join as_of a
        left join profile p using (person) left join value v using (person)
        left join service s using (person) left join voice o using (person) left join consent c using (person)
        """
    )
    return con.execute("select count(*) from customer_360").fetchone()[0]


SESSION_GAP_MINUTES = 30
RFM_SEGMENTS = {  # (recency high, frequency high, monetary high) -> segment; a score is high at 4 or 5
    (True, True, True): "important value",
    (True, False, True): "important development",
    (False, True, True): "important retention",
    (False, False, True): "important win-back",
    (True, True, False): "general value",
    (True, False, False): "general development",
    (False, True, False): "general retention",
    (False, False, False): "general win-back",
}


def build_behaviour(con) -> None:
    """``customer_360``'s behaviour, RFM and last-seen columns (``BEHAVIOUR_COLUMNS``), added to the
    table: channel and time-of-day mix, favourite payment, promotion use and top categories from the
    purchases; web sessions (a device's next event after more than 30 minutes starts one) from the
    clickstream of the devices of known people; quintile scores of recency, frequency and spend."""
    # Only the devices of known people are cut into sessions: anonymous ones reach no column here.
    con.execute(
        f"""
        create or replace temp table _device_sessions as
        with events as (
            select e.device_id, e.occurred_at, lower(trim(e.event_type)) = 'purchase' as is_purchase
            from web_events e
            semi join (select record_id from record_person
                       where source = 'web_events' and person in (select person from _known)) d
              on d.record_id = e.device_id
        ),
        starts as (
            select *, coalesce(occurred_at - lag(occurred_at) over w > interval {SESSION_GAP_MINUTES} minute, true) as starts
            from events window w as (partition by device_id order by occurred_at)
        ),
        -- Events at one instant share a session (a range frame), whichever of them started it.
        numbered as (
            select *, sum(starts::integer) over (partition by device_id order by occurred_at
                                                 range between unbounded preceding and current row) as session_no
            from starts
        )
        select device_id, count(*) filter (where starts) as sessions,
               count(distinct session_no) filter (where is_purchase) as purchase_sessions,
               max(occurred_at) as last_event_at
        from numbered group by device_id
        """
    )
    segments = " ".join(
        f"when (r_score >= 4) = {r} and (f_score >= 4) = {f} and (m_score >= 4) = {m} then '{name}'"
        for (r, f, m), name in RFM_SEGMENTS.items()
    )
    con.execute(
        f"""
        create or replace table customer_360 as
        with timed as (
            select *, case when hour(bought_at) < 6 then 'night' when hour(bought_at) < 12 then 'morning'
                           when hour(bought_at) < 18 then 'afternoon' else 'evening' end as time_of_day
            from _purchases
        ),
        buying as (
            select person, avg((channel = 'web')::integer) as share_web, avg((channel = 'app')::integer) as share_app,
                   avg((channel = 'store')::integer) as share_store,
                   round(avg(coalesce(used_promo, false)::integer), 3) as promotion_sensitivity
            from timed group by person
        ),
        -- The most frequent value; a tie goes to the alphabetically first.
        favourite_time as (
            select person, arg_min(time_of_day, (-n, time_of_day)) as preferred_time_of_day
            from (select person, time_of_day, count(*) as n from timed group by all) group by person
        ),
        favourite_payment as (
            select person, arg_min(payment_method, (-n, payment_method)) as preferred_payment_method
            from (select person, payment_method, count(*) as n from timed where payment_method is not null group by all)
            group by person
        ),
        lines as (
            select 'order:' || order_id as id, product_id, quantity * unit_price - coalesce(discount, 0) as amount
            from ecommerce_order_items
            union all
            select 'pos:' || transaction_id, product_id, quantity * unit_price from pos_transactions
        ),
        per_category as (
            select p.person, coalesce(lower(trim(c.category)), 'uncategorised') as category,
                   sum(cast(l.amount as decimal(38, 10))) as spend, count(distinct l.id) as purchases
            from lines l join _purchases p using (id) left join products c using (product_id)
            group by all
        ),
        categories as (
            select person,
                   list(category order by round(cast(spend as double), 2) desc, purchases desc, category)[1:3] as top
            from per_category group by person
        ),
        browsing as (
            select r.person, sum(s.sessions) as web_sessions, sum(s.purchase_sessions) as purchase_sessions,
                   max(s.last_event_at) as last_web_activity_at
            from _device_sessions s join record_person r on r.source = 'web_events' and r.record_id = s.device_id
            group by r.person
        ),
        rfm as (
            select person,
                   least(5, 1 + floor(5 * percent_rank() over (order by recency_days desc)))::integer as r_score,
                   least(5, 1 + floor(5 * percent_rank() over (order by frequency)))::integer as f_score,
                   least(5, 1 + floor(5 * percent_rank() over (order by monetary)))::integer as m_score
            from (
                select person, date_diff('day', cast(max(bought_at) as date), any_value(a.as_of_date)) as recency_days,
                       count(*) as frequency, cast(sum(cast(amount_double as decimal(38, 10))) as double) as monetary
                from _purchases cross join (select any_value(as_of_date) as as_of_date from customer_360) a
                group by person
            )
        )
        select c.*, k.top[1] as top_category, array_to_string(k.top, ', ') as top_categories,
               b.share_web, b.share_app, b.share_store,
               case when b.person is null then null
                    when greatest(b.share_web, b.share_app, b.share_store) < 0.6 then 'omnichannel'
                    when b.share_app >= greatest(b.share_web, b.share_store) then 'app'
                    when b.share_web >= b.share_store then 'web'
                    else 'store' end as preferred_channel,
               t.preferred_time_of_day, f.preferred_payment_method, b.promotion_sensitivity,
               coalesce(w.web_sessions, 0) as web_sessions,
               round(w.web_sessions / nullif(w.purchase_sessions, 0), 2) as browse_to_buy_ratio,
               m.r_score, m.f_score, m.m_score, case {segments} end as rfm_segment,
               greatest(c.last_purchase_at, w.last_web_activity_at, c.last_contact_at, c.last_review_at) as last_seen_at
        from customer_360 c
        left join buying b using (person) left join favourite_time t using (person)
        left join favourite_payment f using (person) left join categories k using (person)
        left join browsing w using (person) left join rfm m using (person)
        """
    )


def run(landing: Path, database: Path | str = ":memory:", now: datetime | None = None) -> tuple[object, dict]:
    """Build everything on a fresh connection; returns it (for ``compare``) and the timings."""
    now = now or datetime.now().replace(microsecond=0)
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        Path(database).unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    # CPU-seconds beside the wall clock: this process's, every DuckDB thread included.
    cpu_started = time.process_time()
    started = time.perf_counter()
    rows = load(con, landing, now)
    loaded = time.perf_counter()
    records = link_identities(con)
    linked = time.perf_counter()
    customers = build_customer_360(con)
    marts, cpu_marts = time.perf_counter(), time.process_time()
    build_behaviour(con)
    done, cpu_done = time.perf_counter(), time.process_time()
    return con, {
        "ingest_s": round(loaded - started, 2),
        "identity_s": round(linked - loaded, 2),
        "marts_s": round(marts - linked, 2),
        # Added 2026-12-06: the behaviour, RFM and last-seen columns. Before, the floor built only
        # COLUMNS_BEFORE_BEHAVIOUR; core_s is what that floor's total_s measured.
        "behaviour_s": round(done - marts, 2),
        "core_s": round(marts - started, 2),
        "total_s": round(done - started, 2),
        # Added 2026-12-06: CPU-seconds of the whole build and of its first 29 columns' part.
        "cpu_s": round(cpu_done - cpu_started, 2),
        "core_cpu_s": round(cpu_marts - cpu_started, 2),
        "rows": rows,
        "identity_records": records,
        "customers": customers,
        "columns": list(COLUMNS),
    }


def compare(con, platform_warehouse: Path, limit: int = 5) -> dict:
    """The independent ``customer_360`` against the platform's ``marts.customer_360``.

    People are matched through their records: a person here and a customer there are the same when
    they hold exactly the same identity records (the platform's ``marts.identity_map``). Money is
    compared to the cent, everything else exactly; every disagreement is counted per column, with
    a few examples (customer ids only: no personal data)."""
    con.execute(f"attach {_q(str(platform_warehouse))} as platform (read_only)")
    try:
        con.execute(
            """
            create or replace temp table _pairs as
            with joined as (
                select r.person, m.customer_id
                from record_person r
                full join platform.marts.identity_map m
                  on m.source = r.source and m.source_record_id = r.record_id
            ),
            -- A pair holds exactly the same records: one id each way, no record on one side only.
            per_person as (select person, count(distinct customer_id) as n, any_value(customer_id) as customer_id,
                                  count(*) filter (where customer_id is null) as missing
                           from joined where person is not null group by person),
            per_customer as (select customer_id, count(distinct person) as n, count(*) filter (where person is null) as missing
                             from joined where customer_id is not null group by customer_id)
            select p.person, p.customer_id from per_person p join per_customer c using (customer_id)
            where p.n = 1 and c.n = 1 and p.missing = 0 and c.missing = 0
            """
        )
        mine = con.execute("select count(*) from customer_360").fetchone()[0]
        theirs = con.execute("select count(*) from platform.marts.customer_360").fetchone()[0]
        unpaired_mine = con.execute(
            "select count(*) from customer_360 where person not in (select person from _pairs)"
        ).fetchone()[0]
        unpaired_theirs = con.execute(
            "select count(*) from platform.marts.customer_360 where customer_id not in (select customer_id from _pairs)"
        ).fetchone()[0]
        mismatches: dict[str, dict] = {}
        for col in COLUMNS:
            a, b = f"i.{col}", f"m.{col}"
            if col in MONEY:
                a, b = f"round({a}, 2)", f"round({b}, 2)"
            found = con.execute(
                f"""
                select count(*), list(m.customer_id order by m.customer_id)[1:{limit}]
                from customer_360 i join _pairs p using (person)
                join platform.marts.customer_360 m on m.customer_id = p.customer_id
                where {a} is distinct from {b}
                """
            ).fetchone()
            if found[0]:
                mismatches[col] = {"rows": found[0], "examples": found[1]}
    finally:
        con.execute("detach platform")
    return {
        "customers": mine,
        "platform_customers": theirs,
        "unpaired": unpaired_mine,
        "platform_unpaired": unpaired_theirs,
        "columns_compared": list(COLUMNS),
        "mismatches": mismatches,
        "matched": mine == theirs and not unpaired_mine and not unpaired_theirs and not mismatches,
    }


@click.command()
@click.option("--landing", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option(
    "--database", type=click.Path(path_type=Path), default=None, help="DuckDB file (default: in memory)."
)
@click.option(
    "--platform-warehouse",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Compare with this warehouse's marts.customer_360 (opened read-only).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def main(landing: Path, database: Path | None, platform_warehouse: Path | None, out: Path) -> None:
    con, result = run(landing, database or ":memory:")
    if platform_warehouse:
        result["comparison"] = compare(con, platform_warehouse)
    con.close()
    out.write_text(json.dumps(result, indent=2, default=str))
    click.echo(json.dumps({k: result[k] for k in ("ingest_s", "identity_s", "marts_s", "total_s")}))


if __name__ == "__main__":  # pragma: no cover
    main()
