"""Cart-abandonment audience, refreshed by a micro-batch within a couple of minutes of a
clickstream file landing (``orchestration/sensors``), without rebuilding staging or marts.

A customer is listed when, within the last ``lookback_hours``, their latest ``add_to_cart`` is at
least ``abandon_after_minutes`` old and no ``purchase`` event of theirs followed it. Events are
read straight from ``raw.web_events``; a device becomes a customer through ``marts.identity_map``
(source ``web_events``), or, for a device the marts have not seen yet, through the account it
logged in with on a device they have seen. Only customers who consented to push or email
(``marts.customer_360``) are listed, with the channel to use (push first).

"Now" is the latest event time in ``raw.web_events`` (``clock: event_time``, right for replayed
or generated data) or the wall clock (``clock: wall_clock``, for production; set
``C360_CART_CLOCK=wall_clock`` where the sensors run).
"""

from datetime import datetime
from typing import Literal

import dagster as dg
from pydantic import Field

from orchestration.activation.holdout import CampaignConfig, export_with_holdout
from orchestration.dbt.assets import dbt_key
from orchestration.ingest.assets import raw_key
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

CART_ABANDONED_KEY = dg.AssetKey(["activation", "cart_abandoned"])
CART_ABANDONED_TABLE = "activation.cart_abandoned"
WEB_EVENTS_KEY = raw_key("web_events")

COLUMNS = [
    ("customer_id", "varchar", "Customer id (marts.identity_map)"),
    ("cart_added_at", "timestamp", "Time of the customer's latest add_to_cart"),
    ("products", "varchar", "Products added to cart since the last purchase, comma-separated"),
    ("minutes_since_add", "bigint", "Minutes from cart_added_at to as_of"),
    ("channel", "varchar", "Consented channel to remind on: push, else email"),
    ("as_of", "timestamp", "The 'now' the audience was computed for"),
    ("clock", "varchar", "event_time (latest event in raw.web_events) or wall_clock"),
]


class CartAbandonedConfig(CampaignConfig):
    clock: Literal["event_time", "wall_clock"] = Field(
        default="event_time",
        description="What 'now' is: the latest event in raw.web_events (demo, replays) or the wall clock (production).",
    )
    abandon_after_minutes: int = Field(
        default=10, description="Minutes without a purchase after add_to_cart."
    )
    lookback_hours: int = Field(default=24, description="Older carts are not near-real-time any more.")


def cart_abandoned_sql(now_sql: str, abandon_after_minutes: int, lookback_hours: int) -> str:
    """The audience query; ``now_sql`` is a SQL timestamp expression."""
    return f"""
    with params as (
        select {now_sql} as now_ts
    ),
    device_customers as (
        select source_record_id as device_id, customer_id
        from marts.identity_map where source = 'web_events'
    ),
    recent as (
        select e.*
        from raw.web_events e, params p
        where e.occurred_at > p.now_ts - interval {int(lookback_hours)} hour and e.occurred_at <= p.now_ts
    ),
    account_customers as (
        select distinct on (r.user_id) r.user_id, d.customer_id
        from recent r join device_customers d using (device_id)
        where r.user_id is not null
        order by r.user_id, d.customer_id
    ),
    events as (
        select coalesce(d.customer_id, a.customer_id) as customer_id, r.event_type, r.occurred_at, r.product_id
        from recent r
        left join device_customers d using (device_id)
        left join account_customers a using (user_id)
        where r.event_type in ('add_to_cart', 'purchase')
    ),
    last_purchase as (
        select customer_id, max(occurred_at) as purchased_at
        from events where event_type = 'purchase' and customer_id is not null group by 1
    ),
    open_carts as (
        select e.customer_id, max(e.occurred_at) as cart_added_at,
               string_agg(distinct e.product_id, ',' order by e.product_id) as products
        from events e left join last_purchase p using (customer_id)
        where e.event_type = 'add_to_cart' and e.customer_id is not null
          and (p.purchased_at is null or e.occurred_at > p.purchased_at)
        group by 1
    ),
    consent as (
        select customer_id, consent_push, consent_email from marts.customer_360
        where consent_push or consent_email
    ),
    final as (
        select
            c.customer_id,
            c.cart_added_at,
            c.products,
            date_diff('minute', c.cart_added_at, p.now_ts) as minutes_since_add,
            case when k.consent_push then 'push' else 'email' end as channel,
            p.now_ts as as_of
        from open_carts c
        join consent k using (customer_id)
        cross join params p
        where c.cart_added_at <= p.now_ts - interval {int(abandon_after_minutes)} minute
    )
    select * from final order by cart_added_at, customer_id
    """


def refresh_cart_abandoned(con, config: CartAbandonedConfig, wall_now: datetime | None = None) -> dict:
    """Replace ``activation.cart_abandoned`` in one transaction (readers see before or after):
    the audience, less the campaign's holdout, exported at the audience's as-of time."""
    if config.clock == "wall_clock":
        now = (wall_now or datetime.now()).replace(microsecond=0)
        now_sql = f"timestamp '{now:%Y-%m-%d %H:%M:%S}'"
    else:
        now_sql = "(select max(occurred_at) from raw.web_events)"
    con.execute("create schema if not exists activation")
    con.execute("begin transaction")
    try:
        con.execute(
            f"create or replace table {CART_ABANDONED_TABLE} as "
            f"select *, '{config.clock}' as clock from ("
            f"{cart_abandoned_sql(now_sql, config.abandon_after_minutes, config.lookback_hours)})"
        )
        as_of = con.execute(f"select {now_sql}").fetchone()[0]
        holdout = export_with_holdout(con, CART_ABANDONED_TABLE, "cart_abandoned", config, as_of)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    rows = con.execute(f"select count(*) from {CART_ABANDONED_TABLE}").fetchone()[0]
    return {"rows": int(rows), "as_of": str(as_of), **holdout}


@dg.asset(
    key=CART_ABANDONED_KEY,
    deps=[
        WEB_EVENTS_KEY,
        dbt_key("identity_map"),
        dbt_key("customer_360"),
    ],
    group_name="activation",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    retry_policy=dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL),
    description=__doc__.split("\n\n")[0],
    metadata={
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(n, t, description=d) for n, t, d in COLUMNS]
        ),
        "dagster/table_name": CART_ABANDONED_TABLE,
    },
)
def cart_abandoned(config: CartAbandonedConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        stats = refresh_cart_abandoned(con, config)
        preview = con.execute(
            f"select customer_id, cart_added_at, minutes_since_add, channel from {CART_ABANDONED_TABLE} limit 5"
        ).fetchall()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats["rows"],
            "as_of": stats["as_of"],
            "clock": config.clock,
            **{k: v for k, v in stats.items() if k.startswith("campaign") or k == "held_out_rows"},
            "preview": dg.MetadataValue.md(
                "| customer_id | cart_added_at | minutes_since_add | channel |\n|---|---|---|---|\n"
                + "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in preview)
            ),
        }
    )
