"""Overview: customers, activity, revenue by month and channel, data freshness, quality gates."""

import altair as alt
import queries
import streamlit as st
import ui

from c360.settings import get_settings

stamp = ui.page(
    "Overview", "How many customers, how active, how much they spend, and how fresh and clean the data is."
)
if stamp and ui.require(stamp, "marts.customer_360", "marts.revenue_monthly", what="The overview"):
    with ui.section("The overview"):
        k = queries.kpis(stamp).iloc[0]
        cols = st.columns(4)
        cols[0].metric("Customers", f"{int(k.customers):,}")
        cols[1].metric(
            "Active customers",
            f"{int(k.active_customers):,}",
            help="A purchase in the last 90 days of the data.",
        )
        cols[2].metric("Revenue", f"{k.revenue:,.0f}")
        cols[3].metric("Purchases", f"{int(k.purchases):,}", help=f"Latest purchase {k.latest_purchase_at}")

        trend = queries.monthly_trend(stamp)
        st.subheader("Revenue by month and channel")
        chart = (
            alt.Chart(trend)
            .mark_area()
            .encode(
                x=alt.X("month:T", title=None),
                y=alt.Y("revenue:Q", stack=True),
                color="channel:N",
                tooltip=["month:T", "channel", "revenue", "purchases", "customers"],
            )
        )
        st.altair_chart(chart, width="stretch")

st.subheader("Data freshness")
if stamp and ui.require(stamp, "raw._load_log", what="The load log"):
    with ui.section("Data freshness"):
        log = queries.load_log(stamp)
        left, right = st.columns([3, 2])
        with left:
            ui.table(log)
        with right:
            st.metric("Latest load", str(log["latest_load"].max()))
            if not ui.missing(stamp, "raw.web_events", "raw.ecommerce_orders", "raw.pos_transactions"):
                ui.table(queries.event_times(stamp))

st.subheader("Quality gates")
checks = queries.quality_checks(str(get_settings().dagster_home))
if checks.empty:
    st.info("No check results yet: the Dagster instance has not run the checks (`c360 run`).")
else:
    gates = checks[checks["kind"] == "quality gate"]
    cols = st.columns(3)
    cols[0].metric("Quality gates passed", f"{(gates['status'] == 'passed').sum()} / {len(gates)}")
    cols[1].metric("All checks passed", f"{(checks['status'] == 'passed').sum()} / {len(checks)}")
    cols[2].metric("Last evaluated", str(checks["evaluated_at"].max())[:19])
    failing = checks[checks["status"] != "passed"]
    if not failing.empty:
        st.error(f"{len(failing)} check(s) not passing at their latest run")
        ui.table(failing.drop(columns=["kind"]))
    with st.expander("Latest result of every quality gate"):
        ui.table(gates.drop(columns=["kind", "check"]))
if stamp and not ui.missing(stamp, "quality.quarantine"):
    with ui.section("Quarantine"):
        quarantine = queries.quarantine_by_rule(stamp)
        if not quarantine.empty:
            st.caption("Rows kept aside by rule (quality.quarantine)")
            ui.bar(quarantine.head(15), "rule", "rows", color="source", horizontal=True)
