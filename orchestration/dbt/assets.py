"""Every dbt model, seed and test as Dagster assets and asset checks."""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets, get_asset_key_for_model

from c360.settings import get_settings
from orchestration.dbt.project import (
    DBT_DOCS_URL,
    dbt_env,
    dbt_project,
    run_target_path,
    seed_partial_parse,
)
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


DBT_DOCS_KEY = dg.AssetKey(["reports", "dbt_docs"])


@dg.asset(
    key=DBT_DOCS_KEY,
    deps=list(dbt_models.keys),
    group_name="reports",
    pool=WAREHOUSE_POOL,
    kinds={"dbt"},
    description="The dbt docs site (models, columns with their classification, tests, lineage graph) "
    "of the warehouse as built, in $C360_HOME/dbt/docs; `make ui` serves it on 127.0.0.1:8580.",
)
def dbt_docs(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    dbt_env()
    site = get_settings().dbt_docs
    seed_partial_parse(site)
    dbt.cli(["docs", "generate"], target_path=site, raise_on_error=True).wait()
    return dg.MaterializeResult(
        metadata={
            "site": dg.MetadataValue.url(DBT_DOCS_URL),
            "index": dg.MetadataValue.path(str(site / "index.html")),
        }
    )
