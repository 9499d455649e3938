"""Materialize the platform's assets in process, recorded in ``$C360_HOME``'s Dagster instance
so every run shows up in the Dagster UI, and summarise what a run produced."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from c360.settings import Settings, get_settings

DAGSTER_YAML_HEADER = "# Written by c360: local instance under C360_HOME."
DAGSTER_YAML = f"""\
{DAGSTER_YAML_HEADER}
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
# Dagster's SQLite event log, with commits that skip the fsync (WAL, synchronous=NORMAL) and the
# cross-run index kept open: a run stores 800-900 events, and Dagster's own class reopened the
# files and synced for each (orchestration/event_log.py). Its folder is written out: an instance
# opened by path (DagsterInstance.from_config) does not set DAGSTER_HOME.
event_log_storage:
  module: orchestration.event_log
  class: KeptSqliteEventLogStorage
  config:
    base_dir: {{base_dir}}
"""


def dagster_yaml(dagster_home: Path) -> str:
    """The ``dagster.yaml`` c360 writes for the Dagster home ``dagster_home``."""
    return DAGSTER_YAML.replace("{base_dir}", json.dumps(str(Path(dagster_home) / "history" / "runs")))


def prepare_instance(settings: Settings | None = None) -> Settings:
    """Create C360_HOME's folders and Dagster home, and point this process at them."""
    settings = (settings or get_settings()).ensure_dirs()
    os.environ["C360_HOME"] = str(settings.home)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    config = settings.dagster_home / "dagster.yaml"
    # Ours (it starts with our header) is kept current, also when the home moved; one a user
    # wrote is left as it is.
    wanted = dagster_yaml(settings.dagster_home)
    current = config.read_text() if config.exists() else None
    if current is None or (current.startswith(DAGSTER_YAML_HEADER) and current != wanted):
        config.write_text(wanted)
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
    # Non-blocking (WARN) checks that failed: shown, but the run still succeeds.
    checks_warned: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Steps not run because something upstream failed or a blocking check did.
    skipped_steps: list[str] = field(default_factory=list)
    # Assets that ran but had nothing to do, with why (a model without the data to train on).
    skipped_assets: dict[str, str] = field(default_factory=dict)
    # Landing files the ingest steps rejected, with why: "source/file: reason".
    rejected_files: list[str] = field(default_factory=list)
    log_path: str | None = None


class _ProgressHandler(logging.Handler):
    """One console line per finished step; everything else only goes to the run's log file."""

    def __init__(self, echo) -> None:
        super().__init__(logging.DEBUG)
        self._echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        if event is None or not event.step_key:
            return
        kind = event.event_type_value
        if kind == "STEP_SUCCESS":
            seconds = (event.event_specific_data.duration_ms or 0) / 1000
            self._echo(f"  ok       {event.step_key}  {seconds:.1f} s")
        elif kind == "STEP_FAILURE":
            error = event.step_failure_data.error
            message = (error.message.strip().splitlines() or ["failed"])[-1] if error else "failed"
            self._echo(f"  FAILED   {event.step_key}: {message[:200]}")
        elif kind == "STEP_SKIPPED":
            # Dagster skips a step whose upstream yielded nothing: no new landing files (the
            # ingest materializes nothing), a failure or a failed blocking check.
            self._echo(f"  skipped  {event.step_key} (nothing new upstream, or an upstream failure)")
        elif kind == "STEP_UP_FOR_RETRY":
            self._echo(f"  retry    {event.step_key}")


def _run_loggers(log_path: Path, echo) -> dict:
    """A Dagster logger that writes the whole event stream (DEBUG) to ``log_path`` and a progress
    line per step to the console (``echo``): the DEBUG stream buries what a person needs."""
    import dagster as dg

    @dg.logger(description="c360 run: progress lines on the console, every event in the log file.")
    def c360_progress(init_context):
        logger = logging.getLogger(f"c360.run.{log_path.stem}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        file_handler = logging.FileHandler(log_path, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.handlers = [file_handler, _ProgressHandler(echo)]
        return logger

    return {"c360_progress": c360_progress}


class NothingSelected(ValueError):
    """A run's selection names no asset or check of the platform."""


def materialize(selection=None, tags: dict[str, str] | None = None, echo=None) -> RunSummary:
    """Run every asset (or a Dagster selection: a string such as ``"key:marts/customer_360+"`` or
    an ``AssetSelection``),
    printing a line per step with ``echo`` (default: this process's stdout as it is now) and the
    full event log to ``$C360_HOME/logs/``."""
    import dagster as dg

    echo = echo or functools.partial(print, file=sys.stdout, flush=True)
    settings = prepare_instance()
    from c360 import warehouse
    from orchestration.definitions import defs
    from orchestration.memory import RELEASE_MEMORY_HOOKS, unfrozen_after

    instance = dg.DagsterInstance.get()
    release_abandoned_slots(instance)
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"run-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    loggers = _run_loggers(log_path, echo)
    job = dg.Definitions(
        assets=list(defs.assets or []),
        asset_checks=list(defs.asset_checks or []),
        resources=defs.resources,
        # Every step runs in this one process: what a step freed goes back to the system before
        # the next one starts (orchestration/memory.py).
        jobs=[dg.define_asset_job(RUN_JOB_NAME, selection=selection, hooks=RELEASE_MEMORY_HOOKS)],
        loggers=loggers,
    ).resolve_job_def(RUN_JOB_NAME)
    if selection is not None and not job.nodes_in_topological_order:
        # Dagster runs an empty job and calls it a success: a mistyped key would pass unnoticed.
        raise NothingSelected(f"the selection {selection!r} matches no asset or check")
    label = selection if selection is None or isinstance(selection, str) else "the selected assets"
    echo(f"Running {label or 'every asset'} (full log: {log_path})")
    # dagster-dbt re-prints dbt's own log lines on stdout, MLflow logs and draws progress bars on
    # stderr: all of it belongs in the log file, beside the events.
    with (
        open(log_path, "a", encoding="utf-8") as raw_output,
        contextlib.redirect_stdout(raw_output),
        contextlib.redirect_stderr(raw_output),
        _library_logs_to(raw_output),
        unfrozen_after(),
        # The steps' connections share one DuckDB instance, kept open between them (c360/warehouse.py).
        warehouse.held(settings.warehouse),
    ):
        result = job.execute_in_process(
            instance=instance,
            run_config={"loggers": {name: {} for name in loggers}},
            raise_on_error=False,
            tags={**(tags or {}), PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()},
        )
    return summarise(result, str(log_path))


@contextlib.contextmanager
def _library_logs_to(stream):
    """Point the stream handlers that libraries attached at import (before stderr was redirected)
    to ``stream`` for the run, and back afterwards."""
    moved = {}
    for name in ("mlflow", "alembic"):
        for handler in logging.getLogger(name).handlers:
            # Once per handler (one can sit on both loggers), keeping the stream it had: a second
            # setStream would hand back None and the restore would leave the handler with no stream.
            if type(handler) is logging.StreamHandler and handler not in moved:
                moved[handler] = handler.stream
                handler.setStream(stream)
    try:
        yield
    finally:
        for handler, previous in moved.items():
            handler.setStream(previous)


# The in-process run's job: the Dagster UI lists these runs under this name.
RUN_JOB_NAME = "c360_run"


def summarise(result, log_path: str | None = None) -> RunSummary:
    """What a run did, failed, skipped and rejected, from its events."""
    import dagster as dg

    summary = RunSummary(success=result.success, run_id=result.run_id, log_path=log_path)
    for event in result.get_asset_materialization_events():
        key = event.asset_key.to_user_string()
        summary.materialized.append(key)
        meta = event.materialization.metadata
        if "skipped" in meta:
            summary.skipped_assets[key] = str(meta["skipped"].value)
        for rejected in getattr(meta.get("rejected_files"), "value", None) or []:
            summary.rejected_files.append(f"{key.split('/')[-1]}: {rejected}")
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if evaluation.passed:
            summary.checks_passed.append(name)
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            summary.checks_warned.append(name)
        else:
            summary.checks_failed.append(name)
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            summary.failures.append(f"{event.step_key}: {error.message.strip() if error else 'failed'}")
        elif event.is_step_skipped:
            summary.skipped_steps.append(event.step_key)
    return summary
