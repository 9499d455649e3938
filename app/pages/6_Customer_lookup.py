"""Customer lookup: one customer's 360 profile, tags, scores and recommendations, masked."""

import queries
import streamlit as st
import ui

stamp = ui.page(
    "Customer lookup", "One person across every channel. Contact details are shown masked; nothing else is."
)
if stamp and ui.require(stamp, "marts.customer_360", what="The customer profile"):
    with ui.section("The customer profile"):
        sample = queries.sample_customers(stamp, 50)
        typed = st.text_input("Customer id", placeholder="C… (or pick a top customer below)")
        customer = typed.strip() or st.selectbox("Top customers by revenue", sample)
        if customer:
            prof = queries.profile(stamp, customer)
            if prof.empty:
                st.warning(f"No customer {customer}.")
            else:
                p = prof.iloc[0]
                cols = st.columns(4)
                cols[0].metric("Segment", str(p.get("rfm_segment") or "no purchase yet"))
                cols[1].metric("Revenue", f"{p.get('revenue') or 0:,.0f}")
                cols[2].metric("CLV (12 months)", f"{p.get('clv') or 0:,.0f}", str(p.get("clv_tier") or ""))
                cols[3].metric("Orders", f"{int(p.get('orders_total') or 0)}")
                st.subheader("Profile")
                st.table(queries.drop_sensitive(prof).T.rename(columns={0: "value"}).astype(str))

                st.subheader("Scores")
                if not ui.missing(stamp, "ml.churn_scores"):
                    ui.table(queries.customer_rows(stamp, "churn", customer))
                else:
                    st.info("Churn score not built yet (`ml.churn_scores`).")
                if not ui.missing(stamp, "marts.customer_segments"):
                    ui.table(queries.customer_rows(stamp, "segment", customer))

                st.subheader("Tags")
                if ui.require(stamp, "marts.customer_tags", what="Tags"):
                    ui.table(queries.customer_rows(stamp, "tags", customer))

                st.subheader("Recommendations")
                if ui.require(stamp, "ml.recommendations", what="Recommendations"):
                    ui.table(queries.customer_recommendations(stamp, customer))

                st.subheader("Latest purchases")
                if not ui.missing(stamp, "intermediate.int_purchases_unioned"):
                    ui.table(queries.customer_rows(stamp, "purchases", customer))
