"""Blocking checks of the customer marts computed in Python."""

import dagster as dg

from orchestration import metadata
from orchestration.customer.assets import BEHAVIOUR_TABLE, SEGMENTS_KEY
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource


@dg.asset_check(
    asset=SEGMENTS_KEY,
    name="every_buyer_has_one_segment",
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="One row per customer with a purchase, every one named (none when there are too "
    "few buyers to segment).",
)
def every_buyer_has_one_segment(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    if reason := metadata.skip_reason(context, SEGMENTS_KEY):
        return dg.AssetCheckResult(passed=True, metadata={"skipped": reason})
    with warehouse.connect(read_only=True) as con:
        rows, customers, unnamed, missing = con.execute(
            f"""
            select count(*), count(distinct customer_id), count(*) filter (where segment_name is null),
                   (select count(*) from {BEHAVIOUR_TABLE} b where purchases > 0
                    and customer_id not in (select customer_id from marts.customer_segments))
            from marts.customer_segments
            """
        ).fetchone()
    failures = {"duplicate_rows": rows - customers, "unnamed": unnamed, "buyers_missing": missing}
    return dg.AssetCheckResult(passed=not any(failures.values()), metadata={"rows": rows, **failures})
