"""``c360 eval campaigns``: does ``marts.campaign_results`` find a campaign effect that is known?

On a built platform (``make demo``): export an evaluation campaign to every customer with a shop
account and some marketing consent, with a random stratified holdout (``c360.campaigns``, the
same assignment every audience export uses); plant a known effect after the export
(``c360.generate.campaign``: contacted people in the largest segment buy with ``base_rate +
uplift``, everyone else with ``base_rate``); run the pipeline from the landing zone to
``marts.campaign_results``; and compare the measured lift and its 95% interval with the planted
one, in the planted segment and in the next largest segment, where nothing was planted.

It changes the home it runs on (an extra campaign, a month of orders in the landing zone and
warehouse): run it once, on a demo home, not on one holding real data.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from c360 import campaigns
from c360.generate.campaign import SEGMENT_COLUMNS, plant_campaign_effect

EVAL_AUDIENCE_SQL = """
select distinct m.customer_id
from raw.ecommerce_orders o
join marts.identity_map m on m.source = 'ecommerce_orders' and m.source_record_id = o.order_id
join marts.customer_360 c on c.customer_id = m.customer_id
where o.account_id is not null
    and (c.consent_email or c.consent_sms or c.consent_push or c.consent_phone)
"""

RESULTS_SQL = """
select segment, treatment_people, holdout_people, treatment_conversion_rate, holdout_conversion_rate,
       lift, lift_low, lift_high, revenue_lift, revenue_lift_low, revenue_lift_high
from marts.campaign_results
where campaign = ? and breakdown = ? and segment in (select unnest(?))
"""


def _rebuild() -> None:
    import dagster as dg

    from cli.runner import materialize

    # Ingestion of the new orders, identity, purchases and the results, plus every dbt model the
    # purchases feed (so the marts stay consistent with them and their dbt tests hold); no model
    # is retrained. Ingestion assets load several tables at once, hence the neighbours.
    # (campaign_results among them; the assignments were written by the export above).
    purchases = dg.AssetSelection.assets(dg.AssetKey(["intermediate", "int_purchases_unioned"]))
    selection = (
        purchases.upstream() | (purchases.downstream() & dg.AssetSelection.kind("dbt"))
    ).required_multi_asset_neighbors()
    result = materialize(selection)
    if not result.success:
        raise click.ClickException(f"the pipeline run failed: {result.failures}")


def evaluate(
    uplift: float = 0.25,
    by: str = "churn_risk_band",
    base_rate: float = 0.15,
    holdout_share: float = 0.5,
    seed: int = 0,
    rebuild: Callable[[], None] = _rebuild,
) -> dict:
    """Export, plant, rebuild and measure; the report's payload."""
    from c360.settings import get_settings
    from c360.warehouse import connect, table_exists

    settings = get_settings()
    if not settings.warehouse.exists():
        raise click.ClickException(f"no warehouse at {settings.warehouse}: run `c360 run` (make demo) first")
    campaign = f"eval_planted_{seed}"
    con = connect()
    try:
        if not table_exists(con, "marts", "customer_360"):
            raise click.ClickException("marts.customer_360 is missing: run `c360 run` first")
        earlier = con.execute(
            f"select any_value(campaign) from {campaigns.ASSIGNMENTS_TABLE} where campaign like 'eval_planted_%'"
        ).fetchone()[0]
        if earlier:
            # Its planted orders moved the data's clock on by a month past the store and clickstream
            # feeds; a second month would (rightly) fail their freshness gate.
            raise click.ClickException(
                f"this home was already evaluated (campaign {earlier}): run the eval on a fresh demo home"
            )
        exported_at = campaigns.data_now(con)
        groups = campaigns.assign(con, campaign, EVAL_AUDIENCE_SQL, exported_at, holdout_share)
        sizes = con.execute(
            f"select {by}, count(*) from {campaigns.ASSIGNMENTS_TABLE} where campaign = ? "
            "group by 1 order by 2 desc, 1",
            [campaign],
        ).fetchall()
        if len(sizes) < 2:
            raise click.ClickException(f"the campaign has fewer than two {by} segments: nothing to compare")
        (planted_segment, _), (null_segment, _) = sizes[0], sizes[1]
        truth = plant_campaign_effect(
            con, settings.landing, campaign, {planted_segment: uplift}, by, base_rate, seed=seed
        )
    finally:
        con.close()
    rebuild()
    con = connect(read_only=True)
    try:
        rows = con.execute(RESULTS_SQL, [campaign, by, [planted_segment, null_segment]]).df()
    finally:
        con.close()
    measured = {r["segment"]: r for r in rows.to_dict("records")}
    segments = []
    for segment, planted in ((planted_segment, uplift), (null_segment, 0.0)):
        row = measured.get(segment)
        if row is None:
            segments.append(
                {"segment": segment, "planted_lift": planted, "skipped": "too few people per group"}
            )
            continue
        segments.append(
            {
                "segment": segment,
                "planted_lift": planted,
                "treatment_people": int(row["treatment_people"]),
                "holdout_people": int(row["holdout_people"]),
                "treatment_conversion_rate": row["treatment_conversion_rate"],
                "holdout_conversion_rate": row["holdout_conversion_rate"],
                "lift": row["lift"],
                "lift_low": row["lift_low"],
                "lift_high": row["lift_high"],
                "covers_planted": bool(row["lift_low"] <= planted <= row["lift_high"]),
                "covers_zero": bool(row["lift_low"] <= 0 <= row["lift_high"]),
            }
        )
    return {
        "campaign": campaign,
        "by": by,
        "base_rate": base_rate,
        "holdout_share": holdout_share,
        "exported_at": str(exported_at),
        "people": groups["treatment"] + groups["holdout"],
        "treatment": groups["treatment"],
        "holdout": groups["holdout"],
        "planted_orders": truth["orders"],
        "segments": segments,
    }


def _print(console, payload: dict) -> None:
    from rich.table import Table

    table = Table(
        title=f"Campaign {payload['campaign']}: measured lift by {payload['by']} against the planted lift "
        f"({payload['treatment']:,} contacted, {payload['holdout']:,} held out)"
    )
    for col in ("segment", "treated", "held out", "planted", "measured", "95% interval", "covers planted"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    for s in payload["segments"]:
        if "skipped" in s:
            table.add_row(s["segment"], "", "", f"{s['planted_lift']:+.3f}", s["skipped"], "", "")
            continue
        table.add_row(
            s["segment"],
            f"{s['treatment_people']:,}",
            f"{s['holdout_people']:,}",
            f"{s['planted_lift']:+.3f}",
            f"{s['lift']:+.3f}",
            f"[{s['lift_low']:+.3f}, {s['lift_high']:+.3f}]",
            "yes" if s["covers_planted"] else "NO",
        )
    console.print(table)


@click.command(
    "campaigns",
    help="Plant a known campaign effect in one segment and none in another, measure it through "
    "the pipeline (marts.campaign_results) and report whether the 95% intervals cover the "
    "planted lifts; writes reports/eval_campaigns.json. Changes the home: use a demo home.",
)
@click.option(
    "--uplift", default=0.25, show_default=True, help="Planted rise in 30-day purchase probability."
)
@click.option("--by", type=click.Choice(SEGMENT_COLUMNS), default="churn_risk_band", show_default=True)
@click.option(
    "--base-rate", default=0.15, show_default=True, help="30-day purchase probability without contact."
)
@click.option(
    "--holdout-share", default=0.5, show_default=True, help="Share held out (0.5 is the most precise)."
)
@click.option(
    "--seed", default=0, show_default=True, help="Seed of the planted purchases; names the campaign."
)
def eval_campaigns_command(uplift: float, by: str, base_rate: float, holdout_share: float, seed: int) -> None:
    from rich.console import Console

    from cli.evals import write_report

    try:
        payload = evaluate(uplift, by, base_rate, holdout_share, seed)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    console = Console()
    _print(console, payload)
    console.print(f"written {write_report('campaigns', payload)}")
