"""The customer domain: sentiment, behaviour segments and mart pictures (the customer marts
themselves are dbt models in dbt_project/models/marts)."""

import dagster as dg

from orchestration.customer.assets import (
    customer_segment_model,
    customer_segments,
    mart_pictures,
    text_sentiment,
)
from orchestration.customer.checks import every_buyer_has_one_segment

defs = dg.Definitions(
    assets=[text_sentiment, customer_segment_model, customer_segments, mart_pictures],
    asset_checks=[every_buyer_has_one_segment],
)
