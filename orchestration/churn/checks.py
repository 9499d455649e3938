"""Blocking checks of the churn model: its promotion gate and the scores it writes."""

import dagster as dg

from ml import churn
from orchestration import metadata
from orchestration.churn.assets import (
    CHURN_MODEL_KEY,
    CHURN_SCORES_KEY,
    PROMOTION_METRIC,
    SCORE_COLUMNS,
    SCORES_TABLE,
)
from orchestration.model_lifecycle import build_champion_gate
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

churn_champion_gate = build_champion_gate(CHURN_MODEL_KEY, churn.MODEL_NAME, PROMOTION_METRIC)


@dg.asset_check(
    asset=CHURN_SCORES_KEY,
    name="churn_scores_valid",
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="One row per known customer (non-anonymous in the identity graph), probabilities "
    "in [0, 1], no nulls.",
)
def churn_scores_valid(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    # No champion (e.g. a landing without purchases: no customer is ever retained): the scores
    # step skipped and left its table as it was, as ml/clv's does; its check passes with why.
    if reason := metadata.skip_reason(context, CHURN_SCORES_KEY):
        return dg.AssetCheckResult(passed=True, metadata={"skipped": reason})
    null_checks = " + ".join(f"count(*) filter (where {name} is null)" for name, _, _ in SCORE_COLUMNS)
    with warehouse.connect(read_only=True) as con:
        rows, customers, nulls, out_of_range = con.execute(
            f"""
            select count(*), count(distinct customer_id), {null_checks},
                   count(*) filter (where churn_probability < 0 or churn_probability > 1)
            from {SCORES_TABLE}
            """
        ).fetchone()
        missing = con.execute(
            f"""
            select count(distinct customer_id) from intermediate.int_identity_records_matched
            where not is_anonymous and customer_id not in (select customer_id from {SCORES_TABLE})
            """
        ).fetchone()[0]
    failures = {
        "duplicate_rows": rows - customers,
        "customers_missing": missing,
        "null_values": nulls,
        "probability_out_of_range": out_of_range,
    }
    return dg.AssetCheckResult(
        passed=not any(failures.values()), metadata={"rows": rows, **{k: int(v) for k, v in failures.items()}}
    )
