"""The dbt CLI resource, without dagster-dbt's per-step start-up work this platform never uses."""

from __future__ import annotations

import importlib.metadata
import sys
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version

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
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(DBT_EXECUTABLE):
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args):
        return None
