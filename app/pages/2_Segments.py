"""Segments: RFM-8 sizes and revenue, movement since the previous period, behaviour clusters."""

import altair as alt
import queries
import streamlit as st
import ui

stamp = ui.page(
    "Segments", "Who the customers are by value (RFM) and by behaviour, and how they move between segments."
)
if stamp:
    st.subheader("RFM segments")
    if ui.require(stamp, "marts.customer_rfm", what="RFM segments"):
        with ui.section("RFM segments"):
            rfm = queries.rfm_segments(stamp)
            left, right = st.columns(2)
            with left:
                ui.bar(rfm, "rfm_segment", "customers", horizontal=True, title="Customers")
            with right:
                ui.bar(rfm, "rfm_segment", "revenue", horizontal=True, title="Revenue")
            ui.table(rfm)

    st.subheader("Movement since the last period")
    period = st.select_slider("Period (days)", options=[30, 60, 90, 180], value=90)
    if ui.require(
        stamp,
        "marts.rfm_segment_movement",
        what="Segment movement",
    ):
        with ui.section("Segment movement"):
            moves = queries.rfm_movement(stamp, period)
            moved = moves[moves["segment_before"] != moves["segment_now"]]
            stayed = int(moves.loc[moves["segment_before"] == moves["segment_now"], "customers"].sum())
            st.caption(
                f"RFM segments now (marts.customer_rfm) and {period} days before its as-of date: "
                f"{stayed:,} customers kept their segment, {int(moved['customers'].sum()):,} moved."
            )
            heat = (
                alt.Chart(moves)
                .mark_rect()
                .encode(
                    x=alt.X("segment_now:N", title="segment now"),
                    y=alt.Y("segment_before:N", title="segment before"),
                    color=alt.Color("customers:Q", scale=alt.Scale(type="log")),
                    tooltip=["segment_before", "segment_now", "customers"],
                )
            )
            st.altair_chart(heat, width="stretch")
            ui.table(moved.head(20))

    st.subheader("Behaviour clusters")
    if ui.require(stamp, "marts.customer_segments", what="Behaviour clusters"):
        with ui.section("Behaviour clusters"):
            profile = queries.clusters(stamp)
            ui.bar(profile, "segment_name", "customers", horizontal=True)
            ui.table(profile)
