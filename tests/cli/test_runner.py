"""A `c360 run` killed mid-step leaves no claim on the warehouse pool behind: the next run frees
the slots of runs whose process is gone (and marks them failed), and leaves live runs alone."""

import os
import socket
import subprocess
import sys

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id


def add_run(instance, status: DagsterRunStatus, tags: dict[str, str]) -> str:
    run = DagsterRun(job_name="__ephemeral_asset_job__", run_id=make_new_run_id(), status=status, tags=tags)
    instance.add_run(run)
    return run.run_id


def test_slots_of_killed_and_ended_runs_are_freed_and_live_runs_keep_theirs(c360_home):
    from cli.runner import HOST_TAG, PID_TAG, prepare_instance, release_abandoned_slots

    prepare_instance()
    instance = dg.DagsterInstance.get()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = socket.gethostname()
    runs = {
        "killed": add_run(instance, DagsterRunStatus.STARTED, {PID_TAG: str(gone.pid), HOST_TAG: here}),
        "ended": add_run(instance, DagsterRunStatus.FAILURE, {PID_TAG: str(gone.pid), HOST_TAG: here}),
        "alive": add_run(instance, DagsterRunStatus.STARTED, {PID_TAG: str(os.getpid()), HOST_TAG: here}),
        "elsewhere": add_run(
            instance, DagsterRunStatus.STARTED, {PID_TAG: str(gone.pid), HOST_TAG: "other-host"}
        ),
        "daemon": add_run(instance, DagsterRunStatus.STARTED, {}),
    }
    storage = instance.event_log_storage
    for name, run_id in runs.items():
        storage.claim_concurrency_slot(f"pool_{name}", run_id, "step")
    assert set(runs.values()) <= storage.get_concurrency_run_ids()

    freed = release_abandoned_slots(instance)

    assert sorted(freed) == sorted([runs["killed"], runs["ended"]])
    holding = storage.get_concurrency_run_ids()
    assert runs["killed"] not in holding and runs["ended"] not in holding
    assert {runs["alive"], runs["elsewhere"], runs["daemon"]} <= holding
    killed = instance.get_run_by_id(runs["killed"])
    assert killed.status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(runs["alive"]).status == DagsterRunStatus.STARTED
    assert release_abandoned_slots(instance) == []


def test_a_selection_that_matches_nothing_is_an_error_not_an_empty_success(c360_home):
    # Dagster runs an empty job as a success: `c360 run --select key:marts/customer_306` (a typo)
    # would have reported a successful run that did nothing.
    from click.testing import CliRunner

    from cli.main import main

    result = CliRunner().invoke(main, ["run", "--select", "key:marts/customer_306"])

    assert result.exit_code == 2
    assert "key:marts/customer_306" in result.output and "matches no asset" in result.output
    assert not dg.DagsterInstance.get().get_run_records()  # no run was started
