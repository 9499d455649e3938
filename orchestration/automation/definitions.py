"""Automation domain: jobs, schedules and freshness checks."""

import dagster as dg

from orchestration.automation.freshness import freshness_checks, freshness_sensor
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
    asset_checks=freshness_checks,
    sensors=[freshness_sensor],
)
