"""Materialize the platform's assets in process, recorded in ``$C360_HOME``'s Dagster instance
so every run shows up in the Dagster UI, and summarise what a run produced."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from c360.settings import Settings, get_settings

DAGSTER_YAML = """\
# Written by c360: local instance under C360_HOME.
telemetry:
  enabled: false
# DuckDB allows one writing process per database file: assets in the "warehouse" pool run one
# at a time, across runs.
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 4
# Loading the code (dbt manifest, MLflow, scikit-learn) takes tens of seconds on an idle 2-core
# machine and minutes on a busy one; Dagster's default 180 s would kill the code server first.
code_servers:
  local_startup_timeout: 600
"""


def prepare_instance(settings: Settings | None = None) -> Settings:
    """Create C360_HOME's folders and Dagster home, and point this process at them."""
    settings = (settings or get_settings()).ensure_dirs()
    os.environ["C360_HOME"] = str(settings.home)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return settings


@dataclass
class RunSummary:
    success: bool
    run_id: str
    materialized: list[str] = field(default_factory=list)
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def materialize(selection: str | None = None, tags: dict[str, str] | None = None) -> RunSummary:
    """Run every asset (or a Dagster selection string such as ``"key:marts/customer_360+"``)."""
    import dagster as dg

    prepare_instance()
    from orchestration.definitions import defs

    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    result = dg.materialize(
        assets,
        instance=dg.DagsterInstance.get(),
        resources=defs.resources,
        selection=selection,
        raise_on_error=False,
        tags=tags,
    )
    summary = RunSummary(success=result.success, run_id=result.run_id)
    for event in result.get_asset_materialization_events():
        summary.materialized.append(event.asset_key.to_user_string())
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        (summary.checks_passed if evaluation.passed else summary.checks_failed).append(name)
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            summary.failures.append(f"{event.step_key}: {error.message.strip() if error else 'failed'}")
    return summary
