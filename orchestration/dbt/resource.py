"""The dbt CLI resource, without dagster-dbt's per-step start-up work this platform never uses,
running dbt in the run's own process."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
from functools import cached_property
from pathlib import Path

import dagster_dbt.core.resource
from dagster_dbt import DbtCliResource
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation
from packaging import version

from c360 import warehouse
from orchestration.dbt.in_process import InProcessDbt

# The dbt installed beside this Python, whether or not the virtualenv is activated.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")


class CustomerDbtCliResource(DbtCliResource):
    """``DbtCliResource`` minus two things it does before every ``dbt`` command, in each step's
    process (together 2-8 s per dbt step at M, before dbt itself starts):

    - it runs ``dbt --version`` in a subprocess (a whole dbt start-up) to learn the version; the
      executable here is the dbt of this virtualenv, so the installed dbt-core says the same;
    - it imports dbt in the step's process, loads the profile and project and parses dbt's own
      macros to build an adapter handle, which dagster-dbt uses only to fetch row counts or column
      metadata (``fetch_row_counts``/``fetch_column_metadata``), neither used here.

    With another executable (``dbt_executable`` pointing elsewhere) the version is asked as before.

    On the DuckDB target with this virtualenv's dbt, commands run in this process
    (``orchestration/dbt/in_process.py``): the project is parsed once per process instead of dbt
    starting anew for every step. ``C360_DBT_IN_PROCESS=0`` runs each command as a subprocess, as
    on Spark (whose ``session`` method would start a JVM inside the run's process).
    """

    def cli(self, args, **kwargs):
        # dbt opens the warehouse itself (DuckDB allows one instance per process, and another
        # process not at all): a run holding it lets it go (c360/warehouse.py).
        warehouse.let_go()
        if not self._runs_in_process():
            return super().cli(args, **kwargs)
        # dagster-dbt builds the command, environment, selection and target folder, then hands
        # them to ``DbtCliInvocation.run``, which starts the subprocess: only that last call
        # changes, for this command.
        with _invocations_in_process():
            return super().cli(args, **kwargs)

    def _runs_in_process(self) -> bool:
        return (
            Path(self.dbt_executable) == Path(DBT_EXECUTABLE)
            and os.environ.get("C360_DBT_TARGET", "duckdb") == "duckdb"
            and os.environ.get("C360_DBT_IN_PROCESS", "1") != "0"
        )

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(DBT_EXECUTABLE):
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args):
        return None


class InProcessDbtCliInvocation(DbtCliInvocation):
    """``DbtCliInvocation`` reading an ``InProcessDbt`` instead of a subprocess. The target folder
    is seeded with this home's partial-parse state by ``run_target_path`` (dagster-dbt's own
    copy from the checkout's target is the state dbt rejects, see ``seed_partial_parse``)."""

    @classmethod
    def run(
        cls,
        args,
        env,
        manifest,
        dagster_dbt_translator,
        project_dir,
        target_path,
        raise_on_error,
        context,
        adapter,
        cli_version,
        dbt_project=None,
    ):
        return cls(
            process=InProcessDbt(args, env),  # env names the project folder (DBT_PROJECT_DIR)
            manifest=manifest,
            project=dbt_project,
            dagster_dbt_translator=dagster_dbt_translator,
            project_dir=project_dir,
            target_path=target_path,
            raise_on_error=raise_on_error,
            context=context,
            adapter=adapter,
            cli_version=cli_version,
        )


@contextlib.contextmanager
def _invocations_in_process():
    module = dagster_dbt.core.resource
    previous = module.DbtCliInvocation
    module.DbtCliInvocation = InProcessDbtCliInvocation
    try:
        yield
    finally:
        module.DbtCliInvocation = previous
