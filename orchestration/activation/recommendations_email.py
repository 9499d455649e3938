"""The recommendation e-mail audience: the home placement of customers with current email consent."""

import dagster as dg

from orchestration.activation.holdout import CampaignConfig, export_with_holdout
from orchestration.dbt.assets import dbt_key
from orchestration.privacy.checks import consent_check
from orchestration.recommendations.assets import CUSTOMERS_TABLE, RECOMMENDATIONS_KEY
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

EMAIL_AUDIENCE_KEY = dg.AssetKey(["activation", "recommendations_email"])


@dg.asset(
    key=EMAIL_AUDIENCE_KEY,
    deps=[RECOMMENDATIONS_KEY, dbt_key("customer_360")],
    group_name="activation",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Home-placement recommendations of customers with current email consent "
    "(marts.customer_360.consent_email), for the email campaign export, less the campaign's "
    "holdout (activation.campaign_assignments). No consent, no row.",
)
def recommendations_email(config: CampaignConfig, warehouse: WarehouseResource):
    with warehouse.connect() as con:
        con.execute(
            f"""
            create or replace table activation.recommendations_email as
            select r.customer_id, r.rank, r.product_id, r.score, r.reason, r.model_version, r.scored_at
            from ml.recommendations r
            join {CUSTOMERS_TABLE} c using (customer_id)
            where r.placement = 'home' and c.consent_email
            order by r.customer_id, r.rank
            """
        )
        holdout = export_with_holdout(
            con, "activation.recommendations_email", "recommendations_email", config
        )
        rows, customers = con.execute(
            "select count(*), count(distinct customer_id) from activation.recommendations_email"
        ).fetchall()[0]
    return dg.MaterializeResult(
        metadata={"dagster/row_count": int(rows), "customers": int(customers), **holdout}
    )


# No consent, no e-mail: the same gate as every audience the platform exports.
recommendations_email_consented = consent_check(EMAIL_AUDIENCE_KEY, "email")
