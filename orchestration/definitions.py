"""The platform's Dagster definitions: one merge of each domain's own definitions."""

import dagster as dg

from orchestration.dbt.definitions import defs as dbt_defs
from orchestration.ingest.definitions import defs as ingest_defs
from orchestration.ml.clv import defs as clv_defs
from orchestration.quality.definitions import defs as quality_defs
from orchestration.resources import WarehouseResource

defs = dg.Definitions.merge(
    dg.Definitions(resources={"warehouse": WarehouseResource()}),
    ingest_defs,
    dbt_defs,
    clv_defs,
    quality_defs,
)
