"""dbt domain: every model, seed and test as assets, and the dbt docs site."""

import dagster as dg

from orchestration.dbt.assets import dbt_docs, dbt_models
from orchestration.dbt.project import dbt_project
from orchestration.dbt.resource import DBT_EXECUTABLE, CustomerDbtCliResource

defs = dg.Definitions(
    assets=[dbt_models, dbt_docs],
    resources={"dbt": CustomerDbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
