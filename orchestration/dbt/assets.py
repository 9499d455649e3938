"""Every dbt model, seed and test as Dagster assets and asset checks."""


import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.dbt.project import dbt_env, dbt_project
from orchestration.dbt.translator import CustomerDbtTranslator
from orchestration.resources import WAREHOUSE_POOL


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=CustomerDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    dbt_env()
    yield from dbt.cli(["build"], context=context).stream()
