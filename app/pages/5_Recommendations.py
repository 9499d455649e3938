"""Recommendations and cross-sell: the strongest rules, and what one customer would be shown."""

import queries
import streamlit as st
import ui

stamp = ui.page(
    "Recommendations and cross-sell", "Customers who bought X also buy Y, and each customer's personal picks."
)
if stamp:
    st.subheader("Top cross-sell rules by lift")
    if ui.require(stamp, "ml.cross_sell_rules", "raw.products", what="Cross-sell rules"):
        with ui.section("Cross-sell rules"):
            n = st.slider("Rules", 5, 100, 25)
            rules = queries.cross_sell_rules(stamp, n)
            if not rules.empty:
                rules["rule"] = (
                    rules["antecedent_name"].fillna(rules["antecedent"])
                    + " → "
                    + rules["consequent_name"].fillna(rules["consequent"])
                )
                ui.bar(rules.head(15), "rule", "lift", horizontal=True)
            ui.table(rules)

    st.subheader("What a customer would be shown")
    if ui.require(stamp, "ml.recommendations", "marts.customer_360", what="Recommendations"):
        with ui.section("Recommendations"):
            ui.table(queries.recommendations_summary(stamp))
            sample = queries.sample_customers(stamp, 50)
            typed = st.text_input("Customer id", placeholder="C… (or pick a top customer below)")
            customer = typed.strip() or st.selectbox("Top customers by revenue", sample)
            if customer:
                recs = queries.customer_recommendations(stamp, customer)
                if recs.empty:
                    st.info(f"No recommendations for {customer}.")
                else:
                    for placement, group in recs.groupby("placement"):
                        st.markdown(f"**{placement}**")
                        ui.table(group.drop(columns=["placement"]))
