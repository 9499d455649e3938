"""The platform's Dagster definitions: one merge of each domain's own ``defs``."""

import dagster as dg

from orchestration.activation.definitions import defs as activation
from orchestration.alerts.definitions import defs as alerts
from orchestration.automation.definitions import defs as automation
from orchestration.automation.freshness import with_freshness_policies
from orchestration.churn.definitions import defs as churn
from orchestration.clv.definitions import defs as clv
from orchestration.customer.definitions import defs as customer
from orchestration.dbt.definitions import defs as dbt
from orchestration.forecast.definitions import defs as forecast
from orchestration.ingest.definitions import defs as ingest
from orchestration.maintenance.definitions import defs as maintenance
from orchestration.privacy.definitions import defs as privacy
from orchestration.quality.definitions import defs as quality
from orchestration.recommendations.definitions import defs as recommendations
from orchestration.resources import WarehouseResource
from orchestration.sensors.definitions import defs as sensors

defs = with_freshness_policies(
    dg.Definitions.merge(
        dg.Definitions(resources={"warehouse": WarehouseResource()}),
        ingest,
        dbt,
        quality,
        customer,
        churn,
        clv,
        forecast,
        recommendations,
        activation,
        privacy,
        maintenance,
        automation,
        sensors,
        alerts,
    )
)
