"""Freshness checks: a mart not rebuilt within a day (or a model not retrained within a week)
shows as a failed WARN check on its asset in the UI, with how late it is."""

from datetime import timedelta

import dagster as dg

from orchestration.clv.assets import CLV_MODEL_KEY
from orchestration.dbt.assets import dbt_key

MART_MODELS = ("identity_map", "customer_360", "customer_rfm", "customer_tags", "funnel_daily")
# A daily schedule plus a couple of hours of slack for a slow or retried run.
MART_MAX_AGE = timedelta(hours=26)
MODEL_MAX_AGE = timedelta(days=8)

mart_freshness_checks = dg.build_last_update_freshness_checks(
    assets=[dbt_key(name) for name in MART_MODELS],
    lower_bound_delta=MART_MAX_AGE,
)
model_freshness_checks = dg.build_last_update_freshness_checks(
    assets=[CLV_MODEL_KEY],
    lower_bound_delta=MODEL_MAX_AGE,
)
freshness_checks = [*mart_freshness_checks, *model_freshness_checks]

# Evaluates the checks between runs (they are not part of any job), so staleness shows without
# anyone materializing anything.
freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=freshness_checks,
    name="freshness_checks_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
