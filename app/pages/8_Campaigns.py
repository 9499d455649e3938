"""Campaigns: did contacting people change what they did? Lift of the contacted group over the
held-out group, with its 95% interval, overall and per segment, in plain words, and how many
people a campaign needs to detect a given lift."""

import pandas as pd
import queries
import streamlit as st
import ui

from ml import uplift

BREAKDOWNS = {
    "rfm_segment": "RFM segment",
    "churn_risk_band": "Churn risk",
    "lifecycle_stage": "Lifecycle stage",
}


def _points(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value * 100:+.1f} pts"


stamp = ui.page(
    "Campaigns",
    "Every audience export holds back a random share of each segment. The campaign's effect is "
    "the difference in 30-day conversion between the people contacted and those held out.",
)
if stamp and ui.require(stamp, "marts.campaign_results", what="Campaign results"):
    with ui.section("Campaign results"):
        results = queries.campaign_results(stamp)
        if results.empty:
            st.info("No campaign has been exported yet: audience exports (activation) create them.")
        else:
            overview = results[results["breakdown"] == "all"].copy()
            overview["verdict"] = [
                uplift.verdict(r.lift, r.lift_low, r.lift_high) for r in overview.itertuples()
            ]
            ui.table(
                overview[
                    [
                        "campaign",
                        "treatment_people",
                        "holdout_people",
                        "lift",
                        "lift_low",
                        "lift_high",
                        "verdict",
                    ]
                ].round(3)
            )
            campaign = st.selectbox("Campaign", results["campaign"].unique().tolist())
            rows = results[results["campaign"] == campaign]
            overall = rows[rows["breakdown"] == "all"].iloc[0]
            cols = st.columns(4)
            cols[0].metric("Contacted", f"{int(overall.treatment_people):,}")
            cols[1].metric("Held out", f"{int(overall.holdout_people):,}")
            cols[2].metric("Lift", _points(overall.lift))
            cols[3].metric("95% interval", f"{_points(overall.lift_low)} to {_points(overall.lift_high)}")
            st.markdown(f"**Verdict:** {uplift.verdict(overall.lift, overall.lift_low, overall.lift_high)}.")
            st.caption(
                f"Conversion: a purchase within {int(overall.window_days)} days of the export. "
                f"Contacted {overall.treatment_conversion_rate:.1%} against held out "
                f"{overall.holdout_conversion_rate:.1%}; revenue per person "
                f"{overall.treatment_revenue_per_person:,.2f} against {overall.holdout_revenue_per_person:,.2f}."
            )
            segments = rows[rows["breakdown"] != "all"].copy()
            if segments.empty:
                st.info("No segment has enough people in both groups for its own row yet.")
            else:
                segments["breakdown"] = segments["breakdown"].map(BREAKDOWNS).fillna(segments["breakdown"])
                segments["verdict"] = [
                    uplift.verdict(r.lift, r.lift_low, r.lift_high) for r in segments.itertuples()
                ]
                st.subheader("By segment (at export time)")
                ui.table(
                    segments[
                        [
                            "breakdown",
                            "segment",
                            "treatment_people",
                            "holdout_people",
                            "treatment_conversion_rate",
                            "holdout_conversion_rate",
                            "lift",
                            "lift_low",
                            "lift_high",
                            "verdict",
                        ]
                    ].round(3)
                )

    st.subheader("How many people does a campaign need?")
    left, middle, right = st.columns(3)
    baseline = left.number_input("Conversion without contact", 0.01, 0.95, 0.10, 0.01, format="%.2f")
    lift = middle.number_input("Lift to detect (absolute)", 0.005, 0.5, 0.02, 0.005, format="%.3f")
    share = right.slider("Holdout share", 0.05, 0.5, 0.10, 0.05)
    try:
        treated, held = uplift.required_people_per_group(baseline, lift, holdout_share=share)
        st.markdown(
            f"To detect **{lift * 100:.1f} points** over {baseline:.0%} (5% significance, 80% power) "
            f"with {share:.0%} held out: **{treated + held:,} people**, {treated:,} contacted and "
            f"{held:,} held out."
        )
    except ValueError as exc:
        st.warning(str(exc))
