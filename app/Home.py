"""Customer 360 insights: the home page of the Streamlit app for marketing and CRM analysts.
Run it with ``c360 app`` (or ``streamlit run app/Home.py``)."""

import pandas as pd
import queries
import streamlit as st
import ui

EXPECTED_TABLES = {
    "marts.customer_360": "Overview, Segments, Customer lookup, Audiences",
    "marts.customer_rfm": "Segments",
    "marts.revenue_monthly": "Overview (trend)",
    "marts.rfm_segment_movement": "Segments (movement)",
    "intermediate.int_purchases_unioned": "Customer lookup (purchases)",
    "marts.customer_segments": "Segments (behaviour clusters)",
    "marts.customer_tags": "Customer lookup (tags)",
    "marts.funnel_daily": "Funnel",
    "ml.churn_scores": "Risk and value, Audiences (risk)",
    "activation.retention_high_risk": "Risk and value (high-risk list)",
    "ml.recommendations": "Recommendations, Customer lookup",
    "ml.cross_sell_rules": "Recommendations (cross-sell)",
    "ml.clv": "Risk and value (CLV)",
}

stamp = ui.page(
    "Customer 360 insights",
    "Customers, segments, risk, funnel and recommendations from the customer-360 warehouse, "
    "read-only. Contact details appear masked only; audience exports honour consent.",
)
if stamp:
    with ui.section("The warehouse summary"):
        kpis = queries.kpis(stamp).iloc[0]
        cols = st.columns(3)
        cols[0].metric("Customers", f"{int(kpis.customers):,}")
        cols[1].metric("Active (last 90 days)", f"{int(kpis.active_customers):,}")
        cols[2].metric("Revenue", f"{kpis.revenue:,.0f}")
    available = queries.catalogue(stamp)
    state = pd.DataFrame(
        [(t, "built" if t in available else "not built yet", pages) for t, pages in EXPECTED_TABLES.items()],
        columns=["table", "state", "used by"],
    )
    st.subheader("What the pages read")
    ui.table(state)
    st.caption(f"Warehouse: `{stamp[0]}`. Pages are in the sidebar.")
