"""What every audience export shares: the campaign it belongs to and its random holdout
(``c360.campaigns``). The audience table keeps the treatment group only; who was held out is in
``activation.campaign_assignments``, which ``marts.campaign_results`` reads."""

from typing import Literal

import dagster as dg
from pydantic import Field

from c360 import campaigns


class CampaignConfig(dg.Config):
    campaign: str = Field(
        default="",
        description="Campaign id; empty = the audience name. A person keeps their group for the "
        "campaign's life: re-exports under the same id only add new people.",
    )
    holdout_share: float = Field(
        default=campaigns.DEFAULT_HOLDOUT_SHARE,
        ge=0,
        lt=1,
        description="Share of each stratum (churn-risk band x RFM segment) held out, not contacted.",
    )
    export_clock: Literal["event_time", "wall_clock"] = Field(
        default="event_time",
        description="When the export happened: the day after the data's as-of date (demo, "
        "replays) or the wall clock (production). The attribution window starts there.",
    )


def export_with_holdout(con, table: str, audience: str, config: CampaignConfig, exported_at=None) -> dict:
    """Assign the audience in ``table`` to its campaign and cut ``table`` to the treatment group;
    metadata for the materialization (group sizes, no customer ids)."""
    if exported_at is None:
        from datetime import datetime

        exported_at = (
            datetime.now().replace(microsecond=0)
            if config.export_clock == "wall_clock"
            else campaigns.data_now(con)
        )
    stats = campaigns.export_holdout(
        con, table, config.campaign or audience, exported_at, config.holdout_share
    )
    return {
        "campaign": stats["campaign"],
        "campaign_new_people": stats["new_people"],
        "campaign_treatment": stats["treatment"],
        "campaign_holdout": stats["holdout"],
        "held_out_rows": stats["held_out_rows"],
        "exported_at": str(exported_at),
    }


ASSIGNMENTS_KEY = dg.AssetKey(["activation", "campaign_assignments"])
