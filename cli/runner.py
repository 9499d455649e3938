"""Materialize the platform's assets in process, recorded in ``$C360_HOME``'s Dagster instance
so every run shows up in the Dagster UI, and summarise what a run produced."""

from __future__ import annotations

import os
import socket
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


# Tags on every in-process run: which process on which machine runs it, so that a later run can
# tell a run still going from one whose process was killed.
PID_TAG = "c360/pid"
HOST_TAG = "c360/host"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def release_abandoned_slots(instance) -> list[str]:
    """Free the warehouse pool slots held by runs that can no longer release them; return their ids.

    A run frees its slot as each step ends. An in-process ``c360 run`` killed with SIGKILL (or a
    machine that lost power) never does, and every later run would then wait on the pool for
    ever ("Step still blocked by limit for pool warehouse"). Dagster's daemon frees slots only
    for runs that ended, and the CLI runs without it. So before each run: a run that has ended
    has its slots freed; a run still marked started whose c360 process on this machine is gone
    is marked failed (with a message saying so) and its slots freed. Runs launched by the
    Dagster UI or daemon carry no c360 process tag and are left to the daemon's run monitoring.
    """
    freed = []
    for run_id in instance.event_log_storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
            if not (pid and host == socket.gethostname() and _process_gone(int(pid))):
                continue
            instance.report_run_failed(
                run,
                f"Process {pid} running this run on {host} is gone (killed or crashed); "
                "c360 marked the run failed and freed its warehouse pool slot. "
                "Its warehouse writes were rolled back; run it again.",
            )
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        freed.append(run_id)
    return freed


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

    instance = dg.DagsterInstance.get()
    release_abandoned_slots(instance)
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    result = dg.materialize(
        assets,
        instance=instance,
        resources=defs.resources,
        selection=selection,
        raise_on_error=False,
        tags={**(tags or {}), PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()},
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
