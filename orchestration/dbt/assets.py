"""Every dbt model, seed and test as Dagster assets and asset checks."""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets, get_asset_key_for_model

from orchestration.dbt.project import dbt_env, dbt_project, run_target_path
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
    yield from dbt.cli(["build"], context=context, target_path=run_target_path(context)).stream()


def dbt_key(model: str) -> dg.AssetKey:
    """The asset key of dbt model ``model``: Python assets find their dbt inputs through it."""
    return get_asset_key_for_model([dbt_models], model)
