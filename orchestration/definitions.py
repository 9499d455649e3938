"""The platform's Dagster definitions: one merge of each domain's own definitions."""

import dagster as dg

from orchestration.activation.cart_abandoned import defs as cart_abandoned_defs
from orchestration.activation.retention import defs as retention_defs
from orchestration.alerts.definitions import defs as alerts_defs
from orchestration.automation.definitions import defs as automation_defs
from orchestration.customer.definitions import defs as customer_defs
from orchestration.dbt.definitions import defs as dbt_defs
from orchestration.ingest.definitions import defs as ingest_defs
from orchestration.ml.churn import defs as churn_defs
from orchestration.ml.clv import defs as clv_defs
from orchestration.ml.recommendations import defs as recs_defs
from orchestration.privacy.definitions import defs as privacy_defs
from orchestration.quality.definitions import defs as quality_defs
from orchestration.resources import WarehouseResource
from orchestration.sensors.definitions import defs as sensors_defs

defs = dg.Definitions.merge(
    dg.Definitions(resources={"warehouse": WarehouseResource()}),
    ingest_defs,
    dbt_defs,
    customer_defs,
    clv_defs,
    churn_defs,
    recs_defs,
    retention_defs,
    quality_defs,
    privacy_defs,
    cart_abandoned_defs,
    automation_defs,
    sensors_defs,
    alerts_defs,
)
