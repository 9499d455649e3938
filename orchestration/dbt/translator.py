"""How dbt models appear in Dagster: keys follow the warehouse (schema/table), groups and
owners come from each model's meta."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from orchestration.dbt.project import DBT_DOCS_URL


class CustomerDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        meta_key = (dbt_resource_props.get("meta") or {}).get("dagster", {}).get("asset_key")
        if meta_key:
            return dg.AssetKey(meta_key)
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        meta = dbt_resource_props.get("meta") or dbt_resource_props.get("config", {}).get("meta") or {}
        if meta.get("dagster_group"):
            return meta["dagster_group"]
        if dbt_resource_props["resource_type"] == "seed":
            return "reference"
        return super().get_group_name(dbt_resource_props)

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        classes = {
            name: (col.get("meta") or {}).get("classification")
            for name, col in (dbt_resource_props.get("columns") or {}).items()
        }
        if any(classes.values()):
            metadata["column_classification"] = {k: v for k, v in classes.items() if v}
        if dbt_resource_props["resource_type"] == "model":
            metadata["dbt_docs"] = dg.MetadataValue.url(
                f"{DBT_DOCS_URL}/#!/model/{dbt_resource_props['unique_id']}"
            )
        return metadata
