"""How dbt models appear in Dagster: keys follow the warehouse (schema/table), groups and
owners come from each model's meta.

Steps. Dagster runs the dbt multi-asset as one ``dbt build`` per "wave": it splits it wherever a
Python asset sits between dbt models (each wave is a subprocess costing 6-8 s of dbt start-up).
Two waves existed only because of timing, not data: the seeds and the staging models of the
sources loaded first (products, CRM, web...) were a wave before the order sources, which wait for
``raw/products``; and ``int_customer_voice_summarised`` (after ``ml/text_sentiment``) was a wave
before ``customer_360``, its only reader. So every model reading only landing sources (and every
seed) waits for all of ingest, and the voice summary waits for what ``customer_360`` waits for:
the same models with the same inputs, in fewer ``dbt build`` calls (the warehouse pool runs one
asset at a time, so nothing ran in parallel that now waits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from orchestration.dbt.project import DBT_DOCS_URL

INGEST_SCHEMA = "raw"
# model -> the model whose wave it joins (see the module docstring); only a model whose readers
# all come after that one belongs here, or it would wait for nothing.
RUNS_WITH = {"int_customer_voice_summarised": "customer_360"}


def _node(manifest: Mapping[str, Any], name: str) -> str:
    return next(
        uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "model" and n["name"] == name
    )


def _parents(manifest: Mapping[str, Any], unique_id: str) -> list[str]:
    return list((manifest["nodes"].get(unique_id) or {}).get("depends_on", {}).get("nodes", []))


class CustomerDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project=None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id)
        if node is None or node["resource_type"] not in ("model", "seed", "snapshot"):
            return spec
        extra = set(_wave_deps(self, manifest, unique_id, project))
        new = extra - {d.asset_key for d in spec.deps}
        return spec.merge_attributes(deps=sorted(new, key=str)) if new else spec

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


def _source_keys(translator, manifest, unique_ids, project, schema: str | None = None) -> list[dg.AssetKey]:
    return [
        translator.get_asset_spec(manifest, uid, project).key
        for uid in unique_ids
        if uid.startswith("source.") and (schema is None or manifest["sources"][uid]["schema"] == schema)
    ]


def _wave_deps(translator, manifest, unique_id: str, project) -> list[dg.AssetKey]:
    """The extra upstream assets that put ``unique_id`` in a later ``dbt build`` wave."""
    node = manifest["nodes"][unique_id]
    parents = _parents(manifest, unique_id)
    reads_only_landing = all(
        p.startswith("source.") and manifest["sources"][p]["schema"] == INGEST_SCHEMA for p in parents
    )
    if reads_only_landing:
        return _source_keys(translator, manifest, manifest["sources"], project, INGEST_SCHEMA)
    if node["name"] in RUNS_WITH:
        partner = _node(manifest, RUNS_WITH[node["name"]])
        return _source_keys(translator, manifest, _parents(manifest, partner), project)
    return []
