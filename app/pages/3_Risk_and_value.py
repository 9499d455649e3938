"""Risk and value: churn-risk distribution, the high-risk list with suggested actions, CLV tiers."""

import queries
import streamlit as st
import ui

stamp = ui.page(
    "Risk and value", "Who is likely to leave, what to do about it, and what customers are worth."
)
if stamp:
    st.subheader("Churn risk")
    if ui.require(stamp, "ml.churn_scores", what="Churn risk"):
        with ui.section("Churn risk"):
            bands = queries.churn_bands(stamp)
            left, right = st.columns(2)
            with left:
                ui.bar(bands, "risk_band", "customers", title="Customers by risk band")
            with right:
                hist = queries.churn_histogram(stamp)
                ui.bar(hist, "bucket", "customers", title="Churn probability")
            ui.table(bands)

    st.subheader("High-risk customers and suggested actions")
    if ui.require(stamp, "activation.retention_high_risk", what="The high-risk list"):
        with ui.section("The high-risk list"):
            ui.table(queries.high_risk(stamp, 200))

    st.subheader("Customer lifetime value tiers")
    if ui.require(stamp, "marts.customer_360", what="CLV tiers"):
        with ui.section("CLV tiers"):
            tiers = queries.clv_tiers(stamp)
            left, right = st.columns(2)
            with left:
                ui.bar(tiers, "clv_tier", "customers", title="Customers")
            with right:
                ui.bar(tiers, "clv_tier", "total_clv", title="12-month CLV")
            ui.table(tiers)
