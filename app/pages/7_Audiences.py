"""Audiences: filters -> size -> consent-respecting CSV export (logged, no personal data in the log)."""

import audiences
import queries
import streamlit as st
import ui

from c360.settings import get_settings


@st.cache_data(ttl=60, show_spinner=False)
def audience_size(stamp: tuple[str, float], spec: audiences.AudienceFilter) -> int:
    return audiences.audience_size(stamp[0], spec)


@st.cache_data(ttl=60, show_spinner=False)
def audience_preview(stamp: tuple[str, float], spec: audiences.AudienceFilter):
    return audiences.audience_rows(stamp[0], spec, limit=20)


stamp = ui.page(
    "Audiences",
    "Build an audience from filters and export it. Only customers who consented to the "
    "channel are ever included; the file holds the customer id and the masked contact only.",
)
if stamp and ui.require(stamp, "marts.customer_360", what="Audiences"):
    with ui.section("Audiences"):
        options = (
            queries.rfm_segments(stamp)["rfm_segment"].tolist()
            if not ui.missing(stamp, "marts.customer_rfm")
            else []
        )
        tiers = [t for t in queries.clv_tiers(stamp)["clv_tier"].tolist() if t != "no purchase yet"]
        left, right = st.columns(2)
        with left:
            channel = st.radio("Channel (consent required)", queries.CONSENT_CHANNELS, horizontal=True)
            segments = st.multiselect("RFM segment", options)
            clv_tiers = st.multiselect("CLV tier", tiers)
        with right:
            risk_bands, clusters = [], []
            if not ui.missing(stamp, "ml.churn_scores"):
                risk_bands = st.multiselect(
                    "Churn risk band", queries.churn_bands(stamp)["risk_band"].tolist()
                )
            else:
                st.caption("Churn risk filter: `ml.churn_scores` not built yet.")
            if not ui.missing(stamp, "marts.customer_segments"):
                clusters = st.multiselect(
                    "Behaviour cluster", queries.clusters(stamp)["segment_name"].tolist()
                )
            stages = []
            if not ui.missing(stamp, "marts.customer_tags"):
                stages = st.multiselect(
                    "Lifecycle stage", queries.lifecycle_stages(stamp)["lifecycle_stage"].tolist()
                )
        spec = audiences.AudienceFilter(
            channel, tuple(segments), tuple(clv_tiers), tuple(risk_bands), tuple(clusters), tuple(stages)
        )
        size = audience_size(stamp, spec)
        st.metric(f"Audience size (consented to {channel})", f"{size:,}")
        ui.table(audience_preview(stamp, spec))
        reports, user = get_settings().reports, audiences.who()
        campaign_column, share_column = st.columns(2)
        campaign = campaign_column.text_input("Campaign", audiences.default_campaign(spec))
        holdout = share_column.slider(
            "Holdout (not contacted, to measure the effect)", 0, 50, 10, format="%d%%"
        )
        st.download_button(
            "Export CSV",
            lambda: audiences.export(stamp[0], reports, spec, user, campaign, holdout / 100),
            file_name=f"audience_{channel}.csv",
            mime="text/csv",
            disabled=size == 0,
            on_click="ignore",
        )
        st.caption(
            f"Each export is logged (who, when, filters, row count) in `{reports / audiences.EXPORT_LOG}`. "
            "The campaign's holdout is stored in `activation.campaign_assignments` and left out of the "
            "file; the Campaigns page compares the two groups."
        )
