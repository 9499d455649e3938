"""Funnel: browse -> cart -> checkout -> purchase by channel and segment, with the drop-off."""

import altair as alt
import pandas as pd
import queries
import streamlit as st
import ui

STEPS = ["browse", "cart", "checkout", "purchase"]

stamp = ui.page(
    "Funnel", "Sessions that browse, add to cart, check out and pay, and where customers drop out."
)
if stamp and ui.require(stamp, "marts.funnel_daily", what="The funnel"):
    days = st.select_slider("Last days of data", options=[7, 30, 90, 365, 3650], value=90)
    with ui.section("The funnel"):
        total = queries.funnel(stamp, "total", days)
        if total.empty or total["browse"].sum() == 0:
            st.info("No sessions in this window.")
        else:
            row = total.iloc[0]
            steps = pd.DataFrame({"step": STEPS, "sessions": [int(row[s]) for s in STEPS]})
            steps["of_browse"] = (steps["sessions"] / max(steps["sessions"].iloc[0], 1)).round(3)
            steps["drop_off"] = (1 - steps["sessions"] / steps["sessions"].shift(1)).round(3)
            cols = st.columns(4)
            for col, (_, s) in zip(cols, steps.iterrows()):
                col.metric(
                    s.step,
                    f"{s.sessions:,}",
                    None if pd.isna(s.drop_off) else f"-{s.drop_off:.1%}",
                    delta_color="inverse",
                )
            chart = (
                alt.Chart(steps)
                .mark_bar()
                .encode(x=alt.X("step:N", sort=STEPS), y="sessions:Q", tooltip=list(steps.columns))
            )
            st.altair_chart(chart, width="stretch")

        for by, label in (("channel", "By channel"), ("rfm_segment", "By segment")):
            st.subheader(label)
            frame = queries.funnel(stamp, by, days)
            long = frame.melt(id_vars=[by], value_vars=STEPS, var_name="step", value_name="sessions")
            chart = (
                alt.Chart(long)
                .mark_bar()
                .encode(
                    x=alt.X("step:N", sort=STEPS, title=None),
                    y="sessions:Q",
                    color="step:N",
                    column=alt.Column(f"{by}:N", title=None),
                    tooltip=[by, "step", "sessions"],
                )
                .properties(width=110)
            )
            st.altair_chart(chart)
            ui.table(frame)
