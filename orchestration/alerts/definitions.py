"""Alerts domain: failed runs -> alerts.jsonl + a configurable hook."""

import dagster as dg

from orchestration.alerts.sensors import run_failure_alert_sensor

defs = dg.Definitions(sensors=[run_failure_alert_sensor])
