"""Erasure requests as a Dagster job, run in the warehouse pool (it rewrites the file)."""

import dagster as dg
from pydantic import Field

from c360.privacy.erasure import RETRAIN_NOTICE, erase_and_compact
from orchestration.resources import WAREHOUSE_POOL


class ErasureConfig(dg.Config):
    customer_ids: list[str] = Field(description="The people to erase (marts.customer_360.customer_id).")
    request_id: str | None = Field(
        default=None, description="The erasure request reference; default a new uuid."
    )


@dg.op(pool=WAREHOUSE_POOL)
def erase_customers(context: dg.OpExecutionContext, config: ErasureConfig) -> dg.Output:
    result = erase_and_compact(sorted(set(config.customer_ids)), config.request_id)
    context.log.warning(RETRAIN_NOTICE)
    # Counts only: the metadata of a run must not carry the ids it erased.
    return dg.Output(
        None,
        metadata={
            "request_id": result.request_id,
            "people": result.customers,
            "rows_by_table": dg.MetadataValue.json(result.rows_by_table),
            "seconds": round(result.seconds, 2),
        },
    )


@dg.job(description="Erase people everywhere on request (right to be forgotten); see docs/PRIVACY.md.")
def erasure_job():
    erase_customers()
