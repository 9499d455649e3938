"""The run-failure sensor: every failed run of any job becomes an alert (notify.py)."""

import dagster as dg

from c360.alerts import build_alert, send_alert
from c360.settings import get_settings


def _message(error) -> str:
    """The error and its causes, innermost last: the cause is what tells an engineer what broke."""
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause
    return "\n".join(parts)


def failures_of(context: dg.RunFailureSensorContext) -> list[dict]:
    failures = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        failures.append(
            {"step": event.step_key, "error": (_message(error) if error else event.message) or ""}
        )
    if not failures:
        failures.append({"step": None, "error": context.failure_event.message or "run failed"})
    return failures


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run in $C360_HOME/reports/alerts.jsonl with what to do, and calls "
    "C360_ALERT_WEBHOOK (POST JSON) and/or C360_ALERT_COMMAND (JSON on stdin).",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    alert = build_alert(run.run_id, run.job_name, failures_of(context))
    record = send_alert(alert, get_settings().reports)
    context.log.info(f"Alert recorded for run {run.run_id}: {record['hooks'] or 'no hook configured'}")
