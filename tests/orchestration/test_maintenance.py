"""The weekly compaction job (orchestration/maintenance/): on a copy of the demo's warehouse it
gives back space or none, keeps every table's rows and the marts' values, and runs in the
warehouse pool on its own schedule."""

import duckdb
import pytest

from c360.compaction import inventory
from orchestration.resources import WAREHOUSE_POOL


def _marts(path):
    with duckdb.connect(str(path), read_only=True) as con:
        (catalog,) = con.execute("select current_database()").fetchone()
        tables, views = inventory(con, catalog)
        digest = con.execute(
            "select count(*), sum(hash(customer_id, revenue, orders_total, clv)) from marts.customer_360"
        ).fetchone()
    return tables, views, digest


def test_the_job_rewrites_the_demo_warehouse_and_keeps_every_row(demo_copy):
    from orchestration.maintenance.jobs import warehouse_compaction_job

    home = demo_copy("warehouse.duckdb")
    path = home / "warehouse.duckdb"
    before = _marts(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("C360_HOME", str(home))
        mp.delenv("C360_WAREHOUSE", raising=False)
        result = warehouse_compaction_job.execute_in_process()
    assert result.success
    (materialized,) = [
        e
        for e in result.all_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key == "compact_warehouse"
    ]
    metadata = materialized.event_specific_data.metadata
    assert metadata["mb_after"].value <= metadata["mb_before"].value
    assert metadata["mb_after"].value == pytest.approx(path.stat().st_size / 1e6, abs=0.05)
    assert metadata["tables"].value == len(before[0]) and metadata["views"].value == len(before[1])
    assert metadata["rows_checked"].value == sum(before[0].values())
    # Every table of every schema with its rows, every view, and the marts' values.
    assert _marts(path) == before
    assert before[2][0] > 0 and len(before[1]) > 0


def test_the_job_is_scheduled_weekly_in_the_warehouse_pool():
    from orchestration.definitions import defs

    schedule = defs.get_schedule_def("warehouse_compaction_schedule")
    assert schedule.job_name == "warehouse_compaction_job"
    assert schedule.cron_schedule == "0 3 * * 0"
    job = defs.get_job_def("warehouse_compaction_job")
    assert job.graph.node_defs[0].pool == WAREHOUSE_POOL
