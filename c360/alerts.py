"""Run-failure alerts: one JSON line per failed run in ``$C360_HOME/reports/alerts.jsonl``, then
the configured hook: ``C360_ALERT_WEBHOOK`` (POST the alert as JSON) and/or
``C360_ALERT_COMMAND`` (a shell command that gets the alert as JSON on stdin). A hook that fails
is logged in the alert file, never raised: alerting must not fail the sensor."""

import json
import os
import subprocess
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

# First matching pattern (lower-case) in a failure message -> what an engineer should do.
ADVICE = [
    (
        "could not set lock",
        (
            "Another process holds the DuckDB warehouse (a notebook, the duckdb CLI, a second `c360 run`). "
            "Close it, then re-execute the run from failure in the Dagster UI (Runs -> run -> Re-execute -> From failure)."
        ),
    ),
    (
        "break the contract",
        (
            "A landing file does not match c360/contracts.py; nothing from it was loaded. Fix or replace the file "
            "(a fixed file has a new checksum and is picked up by the landing sensor) or update the contract."
        ),
    ),
    (
        "rows_conserved",
        (
            "Rows were lost between landing and raw: compare raw._load_log with quality.quarantine for the file "
            "named in the check metadata before re-running."
        ),
    ),
    (
        "dbt",
        (
            "A dbt model or test failed: open the step's logs (dbt's compiled SQL and failing rows are there), fix "
            "the model or the data, then re-execute from failure."
        ),
    ),
    (
        "mlflow",
        (
            "MLflow could not be reached or wrote nothing: check MLFLOW_TRACKING_URI and its database, then "
            "re-execute from failure; the warehouse is unchanged by the failed step."
        ),
    ),
    (
        "out of memory",
        "DuckDB ran out of memory: lower C360_DUCKDB_THREADS or raise C360_DUCKDB_MEMORY_LIMIT and re-execute.",
    ),
]
DEFAULT_ADVICE = (
    "Open the run in the Dagster UI, read the failed step's error and logs, fix the cause and re-execute from "
    "failure. Steps that completed are not redone; the warehouse is never left half-written."
)


def advice_for(messages: list[str]) -> str:
    text = "\n".join(messages).lower()
    return next((advice for pattern, advice in ADVICE if pattern in text), DEFAULT_ADVICE)


def build_alert(run_id: str, job_name: str, failures: list[dict], run_url: str | None = None) -> dict:
    """``failures``: ``{"step": ..., "error": ...}`` per failed step (or the run's own failure)."""
    return {
        "alert": "run_failed",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "job": job_name,
        "failures": failures,
        "what_to_do": advice_for([f.get("error") or "" for f in failures]),
        "run_url": run_url,
    }


def _post(url: str, alert: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(alert).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _run_command(command: str, alert: dict) -> None:
    subprocess.run(command, shell=True, input=json.dumps(alert), text=True, timeout=60, check=True)


def send_alert(alert: dict, reports: Path, env: dict | None = None) -> dict:
    """Record the alert, call the hooks, and return it with each hook's outcome."""
    env = os.environ if env is None else env
    hooks = {}
    if env.get("C360_ALERT_WEBHOOK"):
        hooks["webhook"] = _try(_post, env["C360_ALERT_WEBHOOK"], alert)
    if env.get("C360_ALERT_COMMAND"):
        hooks["command"] = _try(_run_command, env["C360_ALERT_COMMAND"], alert)
    record = alert | {"hooks": hooks}
    reports.mkdir(parents=True, exist_ok=True)
    with open(reports / "alerts.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    return record


def _try(hook, target: str, alert: dict) -> str:
    try:
        hook(target, alert)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - an alert hook must never break the sensor
        return f"failed: {type(exc).__name__}: {exc}"
