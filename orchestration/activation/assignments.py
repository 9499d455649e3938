"""``activation/campaign_assignments``: the table every audience export appends its campaign's new
people to (``c360.campaigns``). This asset owns it in the graph, after the audiences and before
``marts.campaign_results``: it makes sure the table exists (a fresh warehouse has no export yet)
and shows each campaign's group sizes."""

import dagster as dg

from c360 import campaigns
from orchestration import metadata
from orchestration.activation.cart_abandoned import CART_ABANDONED_KEY
from orchestration.activation.holdout import ASSIGNMENTS_KEY
from orchestration.activation.recommendations_email import EMAIL_AUDIENCE_KEY
from orchestration.activation.retention import AUDIENCE_KEY
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource


@dg.asset(
    key=ASSIGNMENTS_KEY,
    deps=[AUDIENCE_KEY, EMAIL_AUDIENCE_KEY, CART_ABANDONED_KEY],
    group_name="activation",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Who each campaign contacted (treatment) and held out (holdout), written by every "
    "audience export; read by marts.campaign_results.",
    metadata={"dagster/column_schema": metadata.column_schema(campaigns.ASSIGNMENT_COLUMNS)},
)
def campaign_assignments(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        campaigns.ensure_table(con)
        sizes = con.execute(
            f"select campaign, count(*) filter (where campaign_group = 'treatment'), "
            f"count(*) filter (where campaign_group = 'holdout') from {campaigns.ASSIGNMENTS_TABLE} "
            "group by 1 order by 1"
        ).fetchall()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(t + h for _, t, h in sizes),
            "campaigns": {c: {"treatment": int(t), "holdout": int(h)} for c, t, h in sizes},
        }
    )
