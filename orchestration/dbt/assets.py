"""Every dbt model, seed and test as Dagster assets and asset checks."""

import hashlib
import json
import os

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
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

# dbt unit tests check the models' SQL on fixed fixture rows, not the data: they cannot fail on a
# run's data that did not fail in CI, so production runs skip them, as dbt advises (22 of them,
# 4-5 s of every build and daily run at 100k customers). `make test` runs them
# (tests/orchestration/test_dbt_unit_tests.py). Data tests still gate every run.
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=CustomerDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    dbt_env()
    yield from dbt.cli(BUILD_ARGS, context=context, target_path=run_target_path(context)).stream()


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
def dbt_docs(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    dbt_env()
    site = get_settings().dbt_docs
    # The site shows the project (manifest) and the warehouse's relations and columns (catalog;
    # DuckDB's has no row counts): when neither changed since it was generated, as in most daily
    # runs, it is still exact and `dbt docs generate` (a parse and a catalog query, ~13 s at M)
    # is skipped.
    fingerprint = docs_fingerprint(warehouse)
    stamp = site / ".fingerprint"
    current = (
        fingerprint is not None
        and all((site / f).exists() for f in ("index.html", "manifest.json", "catalog.json"))
        and stamp.exists()
        and stamp.read_text() == fingerprint
    )
    if not current:
        stamp.unlink(missing_ok=True)
        seed_partial_parse(site)
        dbt.cli(["docs", "generate"], target_path=site, raise_on_error=True).wait()
        if fingerprint is not None:
            stamp.write_text(fingerprint)
    return dg.MaterializeResult(
        metadata={
            "site": dg.MetadataValue.url(DBT_DOCS_URL),
            "index": dg.MetadataValue.path(str(site / "index.html")),
            "regenerated": not current,
        }
    )


def docs_fingerprint(warehouse: WarehouseResource) -> str | None:
    """A hash of what the docs site shows: the project's manifest (without its generation
    metadata) and every relation, column, type and comment of the DuckDB warehouse. None on
    another target (Spark): the site is always regenerated there."""
    if os.environ.get("C360_DBT_TARGET", "duckdb") != "duckdb" or not dbt_project.manifest_path.exists():
        return None
    manifest = json.loads(dbt_project.manifest_path.read_text())
    manifest.pop("metadata", None)
    # A full re-parse stamps every node anew: only what the nodes say counts.
    for section in manifest.values():
        if isinstance(section, dict):
            for node in section.values():
                if isinstance(node, dict):
                    node.pop("created_at", None)
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode())
    with warehouse.reader() as con:
        relations = con.execute(
            """select t.schema_name, t.table_name, t.comment, c.column_name, c.data_type, c.column_index, c.comment
            from (select database_name, schema_name, table_name, comment from duckdb_tables()
                  union all select database_name, schema_name, view_name, comment from duckdb_views() where not internal) t
            left join duckdb_columns() c using (database_name, schema_name, table_name)
            where t.database_name = current_database()
            order by all"""
        ).fetchall()
    digest.update(repr(relations).encode())
    return digest.hexdigest()
