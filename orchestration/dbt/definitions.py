import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.dbt.assets import dbt_models
from orchestration.dbt.project import dbt_project

defs = dg.Definitions(assets=[dbt_models], resources={"dbt": DbtCliResource(project_dir=dbt_project)})
