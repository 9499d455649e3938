"""Automation domain: jobs and schedules (freshness policies: freshness.py, applied by the platform's
definitions)."""

import dagster as dg

from orchestration.automation.jobs import (
    cart_abandonment_job,
    daily_refresh_job,
    landing_refresh_job,
    weekly_retrain_job,
)
from orchestration.automation.schedules import schedules

defs = dg.Definitions(
    jobs=[daily_refresh_job, weekly_retrain_job, landing_refresh_job, cart_abandonment_job],
    schedules=schedules,
)
