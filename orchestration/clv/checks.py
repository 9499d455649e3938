"""Blocking checks of the CLV model: its promotion gate and the scores it writes."""

import dagster as dg

from ml import clv
from orchestration import metadata
from orchestration.clv.assets import CLV_COLUMNS, CLV_KEY, CLV_MODEL_KEY, PROMOTION_METRIC, PURCHASES_TABLE
from orchestration.model_lifecycle import build_champion_gate
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

clv_champion_gate = build_champion_gate(
    CLV_MODEL_KEY, clv.MODEL_NAME, PROMOTION_METRIC, higher_is_better=False
)


@dg.asset_check(
    asset=CLV_KEY,
    name="clv_scores_valid",
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="One row per customer of int_purchases_unioned, p_alive in [0, 1], clv >= 0, no nulls.",
)
def clv_scores_valid(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    if reason := metadata.skip_reason(context, CLV_KEY):
        return dg.AssetCheckResult(passed=True, metadata={"skipped": reason})
    null_checks = " + ".join(f"count(*) filter (where {name} is null)" for name, _, _ in CLV_COLUMNS)
    with warehouse.connect(read_only=True) as con:
        rows, customers, nulls, bad_p_alive, negative_clv = con.execute(
            f"""
            select count(*), count(distinct customer_id), {null_checks},
                   count(*) filter (where p_alive < 0 or p_alive > 1),
                   count(*) filter (where clv < 0)
            from ml.clv
            """
        ).fetchone()
        missing, unknown = con.execute(
            f"""
            with source as (select distinct customer_id from {PURCHASES_TABLE} where customer_id is not null)
            select (select count(*) from source where customer_id not in (select customer_id from ml.clv)),
                   (select count(*) from ml.clv where customer_id not in (select customer_id from source))
            """
        ).fetchone()
    failures = {
        "duplicate_rows": rows - customers,
        "customers_missing": missing,
        "customers_unknown": unknown,
        "null_values": nulls,
        "p_alive_out_of_range": bad_p_alive,
        "negative_clv": negative_clv,
    }
    return dg.AssetCheckResult(
        passed=not any(failures.values()), metadata={"rows": rows, **{k: int(v) for k, v in failures.items()}}
    )
