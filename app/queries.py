"""Every question the customer-insights app asks the warehouse: SQL pushed down to DuckDB and
aggregated there, over a read-only connection opened per query and closed at once (DuckDB lets
one process write; a connection held open would block the pipeline's writer).

Cached functions take ``stamp()`` (warehouse path and modification time) as their first argument,
so a pipeline run that rewrites the warehouse invalidates the cache at once. The ttl only lets
entries for old stamps go, so it can be long: at 1M customers a page's first queries take
seconds, and a short ttl would make every analyst pay that again every few minutes.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from c360.settings import get_settings

TTL = 6 * 3600
# How long opening the warehouse waits for a writer to let go. An audience export holds the lock
# for well under a second (it assigns its campaign): a page opened then should wait, not say "try
# again". A pipeline run holds it for minutes, so the wait stays short and its message still comes
# (a page checks the warehouse once before its sections, so it waits once).
LOCK_WAIT_S = 2.0
# Per-customer lookups: many keys, each cheap to recompute.
LOOKUP_CACHE = {"ttl": 600, "max_entries": 1000, "show_spinner": False}
SENSITIVE_COLUMN = re.compile(r"(_enc|_hash)$")
CONSENT_CHANNELS = ("email", "sms", "push", "phone")


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be read right now (missing, or locked by a writer)."""


class TableMissing(LookupError):
    """A table the page needs has not been built yet."""


def warehouse_path() -> Path:
    return get_settings().warehouse


def stamp() -> tuple[str, float]:
    """Warehouse path and the latest modification time of the file or its write-ahead log (a
    writer that stopped before a checkpoint leaves its changes in the .wal, which readers see)."""
    path = warehouse_path()
    times = [p.stat().st_mtime for p in (path, path.with_name(path.name + ".wal")) if p.exists()]
    return str(path), max(times, default=0.0)


def drop_sensitive(frame: pd.DataFrame) -> pd.DataFrame:
    """Defence in depth: the app never shows an encrypted or pseudonymised column."""
    return frame[[c for c in frame.columns if not SENSITIVE_COLUMN.search(str(c))]]


def _connect(path: str, wait_s: float = LOCK_WAIT_S) -> duckdb.DuckDBPyConnection:
    if not Path(path).exists():
        raise WarehouseUnavailable(f"No warehouse at {path} yet: run `c360 run` (or `make demo`) first.")
    deadline = time.monotonic() + wait_s
    pause = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() + pause > deadline:
                raise WarehouseUnavailable(
                    "The pipeline is writing to the warehouse right now (DuckDB allows one writer). "
                    "Try again in a minute."
                ) from exc
        time.sleep(pause)
        pause = min(pause * 2, 0.4)


def run(path: str, sql: str, params: list | None = None) -> pd.DataFrame:
    con = _connect(path)
    try:
        frame = con.execute(sql, params or []).df()
    except (duckdb.CatalogException, duckdb.BinderException) as exc:
        raise TableMissing(str(exc).splitlines()[0]) from exc
    finally:
        con.close()
    return drop_sensitive(frame)


# ---- catalogue ---------------------------------------------------------------------------

COLUMNS_SQL = """
select table_schema || '.' || table_name as table_name, column_name
from information_schema.columns
where table_schema not in ('information_schema', 'pg_catalog')
"""


@st.cache_data(ttl=TTL, show_spinner=False)
def catalogue(stamp: tuple[str, float]) -> dict[str, list[str]]:
    """{schema.table: [columns]} for every table and view in the warehouse."""
    frame = run(stamp[0], COLUMNS_SQL)
    return {name: list(group["column_name"]) for name, group in frame.groupby("table_name")}


# ---- overview ----------------------------------------------------------------------------

# From the customer table (one row per customer, already summed by the pipeline) rather than the
# purchase lines: the same figures, but a scan of ~10x fewer rows and no count(distinct), which at
# 1M customers is the difference between ~0.1 s and several seconds.
KPIS_SQL = """
with c as (select last_purchase_at, revenue, orders_total from marts.customer_360),
latest as (select max(last_purchase_at) as max_at from c)
select
    count(*) as customers,
    count(*) filter (where c.last_purchase_at > latest.max_at - interval 90 day) as active_customers,
    sum(c.revenue) as revenue,
    sum(c.orders_total)::bigint as purchases,
    any_value(latest.max_at) as latest_purchase_at
from c, latest
"""

# Precomputed by dbt (marts/revenue_monthly.sql): a count distinct over every purchase per view
# took seconds at 1M customers.
MONTHLY_TREND_SQL = """
select month, channel, purchases, revenue, customers
from marts.revenue_monthly
order by month, channel
"""

LOAD_LOG_SQL = """
select source, max(loaded_at) as latest_load, count(*) as files,
       sum(rows_loaded) as rows_loaded, sum(rows_quarantined) as rows_quarantined
from raw._load_log
group by source
order by source
"""

EVENT_TIMES_SQL = """
select 'web_events' as source, max(occurred_at) as max_event_time from raw.web_events
union all select 'ecommerce_orders', max(ordered_at) from raw.ecommerce_orders
union all select 'pos_transactions', max(occurred_at) from raw.pos_transactions
"""

QUARANTINE_SQL = """
select source, rule, count(*) as rows from quality.quarantine group by all order by rows desc
"""


@st.cache_data(ttl=TTL, show_spinner=False)
def kpis(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], KPIS_SQL)


@st.cache_data(ttl=TTL, show_spinner=False)
def monthly_trend(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], MONTHLY_TREND_SQL)


# Freshness facts of the warehouse itself: they change only when the warehouse does, and the
# stamp (the file's and its WAL's modification time) is part of the cache key, so the long TTL is
# safe. event_times scans the raw event tables (1.0 s at 1M customers, 108M rows): with a
# one-minute TTL the Overview page paid it again every minute.
@st.cache_data(ttl=TTL, show_spinner=False)
def load_log(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], LOAD_LOG_SQL)


@st.cache_data(ttl=TTL, show_spinner=False)
def event_times(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], EVENT_TIMES_SQL)


@st.cache_data(ttl=TTL, show_spinner=False)
def quarantine_by_rule(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], QUARANTINE_SQL)


# The Dagster instance's own SQLite index, opened read-only. Importing dagster takes seconds,
# far over a page's budget, so the app reads the check-execution table directly.
CHECKS_SQL = """
select asset_key, check_name, execution_status, evaluation_event_timestamp, evaluation_event
from (
    select *, row_number() over (partition by asset_key, check_name order by id desc) as rn
    from asset_check_executions
    where execution_status in ('SUCCEEDED', 'FAILED', 'EXECUTION_FAILED', 'SKIPPED')
) where rn = 1
order by asset_key, check_name
"""


def _check_detail(event_json: str | None) -> str:
    if not event_json:
        return ""
    try:
        data = json.loads(event_json)["dagster_event"]["event_specific_data"]
        failed = data.get("metadata", {}).get("failed")
        if failed and failed.get("__class__") == "JsonMetadataEntryData":
            return "; ".join(
                map(str, json.loads(failed["data"]) if isinstance(failed["data"], str) else failed["data"])
            )
        if failed:
            return str(failed.get("text") or failed.get("data") or "")
    except (KeyError, TypeError, ValueError):
        return ""
    return ""


@st.cache_data(ttl=60, show_spinner=False)
def quality_checks(dagster_home: str) -> pd.DataFrame:
    """Latest result of every asset check (quality gates and dbt tests) in the Dagster instance."""
    index = Path(dagster_home) / "history" / "runs" / "index.db"
    columns = ["asset", "check", "kind", "status", "evaluated_at", "detail"]
    if not index.exists():
        return pd.DataFrame(columns=columns)
    con = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=2)
    try:
        rows = con.execute(CHECKS_SQL).fetchall()
    except sqlite3.Error:
        return pd.DataFrame(columns=columns)
    finally:
        con.close()
    out = []
    for asset_key, check, status, evaluated_at, event in rows:
        asset = "/".join(json.loads(asset_key)) if asset_key and asset_key.startswith("[") else asset_key
        kind = "quality gate" if check == "quality_gate" else "dbt test / check"
        out.append(
            (
                asset,
                check,
                kind,
                "passed" if status == "SUCCEEDED" else status.lower(),
                evaluated_at,
                _check_detail(event) if status != "SUCCEEDED" else "",
            )
        )
    return pd.DataFrame(out, columns=columns)


# ---- segments ----------------------------------------------------------------------------

RFM_SEGMENTS_SQL = """
select rfm_segment, count(*) as customers, round(sum(monetary), 2) as revenue,
       round(avg(recency_days), 1) as avg_recency_days, round(avg(frequency), 2) as avg_frequency,
       round(avg(monetary), 2) as avg_monetary, any_value(as_of_date) as as_of_date
from marts.customer_rfm
group by rfm_segment
order by revenue desc
"""

# Who moved from which RFM segment to which, precomputed by dbt for looks back of 30, 60, 90 and
# 180 days (marts/rfm_segment_movement.sql): scoring an earlier date per page view took ~10 s
# at 1M customers.
RFM_MOVEMENT_SQL = """
select segment_before, segment_now, customers
from marts.rfm_segment_movement
where period_days = ?
order by customers desc
"""

CLUSTERS_SQL = """
select s.segment_id, s.segment_name, count(*) as customers,
       round(avg(c.revenue), 2) as avg_revenue, round(avg(c.orders_total), 2) as avg_orders,
       round(avg(c.avg_order_value), 2) as avg_order_value,
       round(avg(c.orders_online / nullif(c.orders_total, 0)), 3) as online_share,
       round(avg(c.clv), 2) as avg_clv, round(avg(c.tenure_days), 0) as avg_tenure_days
from marts.customer_segments s
left join marts.customer_360 c using (customer_id)
group by all
order by customers desc
"""


@st.cache_data(ttl=TTL, show_spinner=False)
def rfm_segments(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], RFM_SEGMENTS_SQL)


@st.cache_data(ttl=TTL, show_spinner=False)
def rfm_movement(stamp: tuple[str, float], period_days: int = 90) -> pd.DataFrame:
    return run(stamp[0], RFM_MOVEMENT_SQL, [int(period_days)])


@st.cache_data(ttl=TTL, show_spinner=False)
def clusters(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], CLUSTERS_SQL)


# ---- risk and value ----------------------------------------------------------------------

CHURN_BANDS_SQL = """
select risk_band, count(*) as customers, round(avg(churn_probability), 3) as avg_probability,
       any_value(model_version) as model_version, max(scored_at) as scored_at
from ml.churn_scores group by risk_band order by avg_probability desc
"""

CHURN_HISTOGRAM_SQL = """
select least(floor(churn_probability * 20) / 20, 0.95) as bucket, count(*) as customers
from ml.churn_scores group by bucket order by bucket
"""

HIGH_RISK_SQL = """
select h.*, c.rfm_segment as segment, c.clv_tier as tier, round(c.clv, 2) as customer_clv
from activation.retention_high_risk h
left join marts.customer_360 c using (customer_id)
order by h.{order_column} desc nulls last
limit ?
"""

CLV_TIERS_SQL = """
select coalesce(clv_tier, 'no purchase yet') as clv_tier, count(*) as customers,
       round(sum(clv), 2) as total_clv, round(avg(clv), 2) as avg_clv,
       round(avg(p_alive), 3) as avg_p_alive, round(avg(expected_days_to_next_purchase), 1) as avg_days_to_next
from marts.customer_360 group by all order by total_clv desc nulls last
"""


@st.cache_data(ttl=TTL, show_spinner=False)
def churn_bands(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], CHURN_BANDS_SQL)


@st.cache_data(ttl=TTL, show_spinner=False)
def churn_histogram(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], CHURN_HISTOGRAM_SQL)


@st.cache_data(ttl=TTL, show_spinner=False)
def high_risk(stamp: tuple[str, float], limit: int = 200) -> pd.DataFrame:
    columns = catalogue(stamp).get("activation.retention_high_risk", [])
    order = "churn_probability" if "churn_probability" in columns else "customer_id"
    frame = run(stamp[0], HIGH_RISK_SQL.format(order_column=order), [int(limit)])
    # Contact details stay out of this list: only masked columns could appear, and none are needed.
    return frame[[c for c in frame.columns if not c.endswith("_masked")]]


@st.cache_data(ttl=TTL, show_spinner=False)
def clv_tiers(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], CLV_TIERS_SQL)


# ---- funnel ------------------------------------------------------------------------------

FUNNEL_SQL = """
select {group_by} as {group_name},
       sum(sessions) as browse, sum(cart_sessions) as cart,
       sum(checkout_sessions) as checkout, sum(purchase_sessions) as purchase
from marts.funnel_daily
where {day_column} >= (select max({day_column}) from marts.funnel_daily) - ?::integer
group by all
order by browse desc
"""


@st.cache_data(ttl=TTL, show_spinner=False)
def funnel(stamp: tuple[str, float], by: str = "channel", days: int = 90) -> pd.DataFrame:
    """Sessions reaching each step (browse, cart, checkout, purchase) by channel or segment,
    over the last ``days`` days of data."""
    if by not in ("channel", "rfm_segment", "total"):
        raise ValueError(f"unknown funnel grouping {by!r}")
    columns = catalogue(stamp).get("marts.funnel_daily", [])
    day_column = "session_date" if "session_date" in columns else "day"
    group_by = "'all sessions'" if by == "total" else by
    sql = FUNNEL_SQL.format(group_by=group_by, group_name="grp", day_column=day_column)
    frame = run(stamp[0], sql, [int(days)])
    frame = frame.rename(columns={"grp": by})
    for step, previous in (("cart", "browse"), ("checkout", "cart"), ("purchase", "checkout")):
        frame[f"{previous}_to_{step}"] = (frame[step] / frame[previous].where(frame[previous] > 0)).round(3)
    frame["conversion"] = (frame["purchase"] / frame["browse"].where(frame["browse"] > 0)).round(4)
    return frame


# ---- recommendations ---------------------------------------------------------------------

RULES_SQL = """
select r.antecedent, pa.product_name as antecedent_name, r.consequent, pc.product_name as consequent_name,
       round(r.support, 4) as support, round(r.confidence, 3) as confidence, round(r.lift, 2) as lift
from ml.cross_sell_rules r
left join raw.products pa on pa.product_id = r.antecedent
left join raw.products pc on pc.product_id = r.consequent
order by r.lift desc, r.confidence desc
limit ?
"""

CUSTOMER_RECS_SQL = """
select r.placement, r.rank, r.product_id, p.product_name, p.category, round(r.score, 4) as score, r.reason
from ml.recommendations r
left join raw.products p using (product_id)
where r.customer_id = ?
order by r.placement, r.rank
"""

RECS_SUMMARY_SQL = """
select placement, count(distinct customer_id) as customers, count(*) as recommendations,
       count(distinct product_id) as distinct_products
from ml.recommendations group by placement order by placement
"""

SAMPLE_CUSTOMERS_SQL = """
select customer_id from marts.customer_360
where orders_total > 0
order by revenue desc nulls last, customer_id
limit ?
"""


@st.cache_data(ttl=TTL, show_spinner=False)
def cross_sell_rules(stamp: tuple[str, float], limit: int = 25) -> pd.DataFrame:
    return run(stamp[0], RULES_SQL, [int(limit)])


@st.cache_data(**LOOKUP_CACHE)
def customer_recommendations(stamp: tuple[str, float], customer_id: str) -> pd.DataFrame:
    return run(stamp[0], CUSTOMER_RECS_SQL, [customer_id])


@st.cache_data(ttl=TTL, show_spinner=False)
def recommendations_summary(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(stamp[0], RECS_SUMMARY_SQL)


@st.cache_data(ttl=TTL, show_spinner=False)
def sample_customers(stamp: tuple[str, float], limit: int = 50) -> list[str]:
    return run(stamp[0], SAMPLE_CUSTOMERS_SQL, [int(limit)])["customer_id"].tolist()


# ---- customer lookup ---------------------------------------------------------------------

# An explicit allow-list: contact details only in their masked form.
PROFILE_COLUMNS = (
    "customer_id",
    "gender",
    "age_band",
    "region",
    "city",
    "signup_channel",
    "tenure_days",
    "email_masked",
    "phone_masked",
    "orders_online",
    "orders_in_store",
    "orders_total",
    "revenue",
    "avg_order_value",
    "first_purchase_at",
    "last_purchase_at",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "clv",
    "clv_tier",
    "p_alive",
    "expected_days_to_next_purchase",
    "consent_email",
    "consent_sms",
    "consent_push",
    "consent_phone",
    "as_of_date",
)

PROFILE_SQL = "select {columns} from marts.customer_360 where customer_id = ?"
TAGS_SQL = (
    "select tag_group, tag, value, valid_from from marts.customer_tags where customer_id = ? order by all"
)
CHURN_SQL = (
    "select churn_probability, risk_band, model_version, scored_at from ml.churn_scores where customer_id = ?"
)
SEGMENT_SQL = "select segment_id, segment_name from marts.customer_segments where customer_id = ?"
PURCHASES_SQL = """
select purchased_at, channel, amount from intermediate.int_purchases_unioned
where customer_id = ? order by purchased_at desc limit 20
"""


@st.cache_data(**LOOKUP_CACHE)
def profile(stamp: tuple[str, float], customer_id: str) -> pd.DataFrame:
    available = catalogue(stamp).get("marts.customer_360", [])
    columns = [c for c in PROFILE_COLUMNS if c in available] or ["customer_id"]
    return run(stamp[0], PROFILE_SQL.format(columns=", ".join(columns)), [customer_id])


@st.cache_data(**LOOKUP_CACHE)
def customer_rows(stamp: tuple[str, float], sql_name: str, customer_id: str) -> pd.DataFrame:
    sql = {"tags": TAGS_SQL, "churn": CHURN_SQL, "segment": SEGMENT_SQL, "purchases": PURCHASES_SQL}[sql_name]
    return run(stamp[0], sql, [customer_id])


# ---- campaigns -----------------------------------------------------------------------------


@st.cache_data(ttl=TTL, show_spinner=False)
def campaign_results(stamp: tuple[str, float]) -> pd.DataFrame:
    """Every campaign's lift, overall (breakdown 'all') and per segment, from marts.campaign_results."""
    return run(
        stamp[0],
        "select * from marts.campaign_results "
        "order by campaign, breakdown <> 'all', breakdown, treatment_people + holdout_people desc, segment",
    )


@st.cache_data(ttl=TTL, show_spinner=False)
def lifecycle_stages(stamp: tuple[str, float]) -> pd.DataFrame:
    return run(
        stamp[0],
        "select value as lifecycle_stage, count(*) as customers from marts.customer_tags "
        "where tag = 'lifecycle_stage' group by 1 order by 2 desc",
    )
