"""Warehouse maintenance: a weekly compaction, in the warehouse pool (it rewrites the file)."""

import dagster as dg

from c360.compaction import compact
from orchestration.resources import WAREHOUSE_POOL


@dg.op(pool=WAREHOUSE_POOL)
def compact_warehouse(context: dg.OpExecutionContext) -> dg.Output:
    """Rewrite the warehouse densely (c360/compaction.py); the copy is checked before the swap."""
    result = compact()
    context.log.info(
        f"Warehouse compacted: {result.bytes_before / 1e6:,.1f} MB -> {result.bytes_after / 1e6:,.1f} MB "
        f"in {result.seconds:.1f} s ({result.tables} tables, {result.rows:,} rows checked)"
    )
    return dg.Output(
        None,
        metadata={
            "mb_before": dg.MetadataValue.float(round(result.bytes_before / 1e6, 1)),
            "mb_after": dg.MetadataValue.float(round(result.bytes_after / 1e6, 1)),
            "mb_reclaimed": dg.MetadataValue.float(round(result.reclaimed_bytes / 1e6, 1)),
            "tables": result.tables,
            "views": result.views,
            "rows_checked": result.rows,
            "erasures_completed": result.erasures_completed,
            "seconds": round(result.seconds, 2),
        },
    )


@dg.job(
    description="Rewrite the warehouse file densely, giving back the space the daily runs' "
    "rewrites leave (about 1% of the file a day at 100k customers); the copy is checked before it "
    "replaces the file. Needs the file to itself: the insights app closed."
)
def warehouse_compaction_job():
    compact_warehouse()


# Sunday night: after Saturday's daily refresh has long finished and before Monday's refresh and
# retraining; the warehouse pool still queues it behind any run that writes.
warehouse_compaction_schedule = dg.ScheduleDefinition(
    name="warehouse_compaction_schedule",
    job=warehouse_compaction_job,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sunday 03:00 UTC: compact the warehouse file (c360 compact does it by hand).",
)
