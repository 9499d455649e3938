"""Maintenance domain: the warehouse's weekly compaction (jobs.py)."""

import dagster as dg

from orchestration.maintenance.jobs import warehouse_compaction_job, warehouse_compaction_schedule

defs = dg.Definitions(jobs=[warehouse_compaction_job], schedules=[warehouse_compaction_schedule])
