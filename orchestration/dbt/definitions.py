"""dbt domain: every model, seed and test as assets, and the dbt docs site."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.dbt.assets import dbt_docs, dbt_models
from orchestration.dbt.project import dbt_project

# The dbt installed beside this Python, whether or not the virtualenv is activated.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

defs = dg.Definitions(
    assets=[dbt_models, dbt_docs],
    resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
