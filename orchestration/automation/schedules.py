"""When the platform refreshes itself: marts every morning, models every Monday."""

import dagster as dg

from orchestration.automation.jobs import daily_refresh_job, weekly_retrain_job

TIMEZONE = "UTC"

daily_refresh_schedule = dg.ScheduleDefinition(
    name="daily_refresh_schedule",
    job=daily_refresh_job,
    cron_schedule="0 5 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="05:00 UTC: load what landed overnight and rebuild the marts before the working day.",
)

# After Monday's daily refresh, so the models train on the freshest marts.
weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain_schedule",
    job=weekly_retrain_job,
    cron_schedule="0 7 * * 1",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monday 07:00 UTC: retrain the ML models on the refreshed marts.",
)

schedules = [daily_refresh_schedule, weekly_retrain_schedule]
