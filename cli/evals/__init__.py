"""``c360 eval <x>``: each evaluation prints a table and writes ``$C360_HOME/reports/eval_<x>.json``
(with the MLflow ``tracking_uri``), so results can be compared from run to run."""

from __future__ import annotations

import json
from pathlib import Path

from c360.settings import get_settings


def write_report(name: str, payload: dict) -> Path:
    settings = get_settings().ensure_dirs()
    payload = {"tracking_uri": settings.mlflow_tracking_uri, **payload}
    path = settings.reports / f"eval_{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
