"""The customer domain: sentiment, behaviour segments and mart pictures (the customer marts
themselves are dbt models in dbt_project/models/marts)."""

import dagster as dg

from orchestration.customer.assets import asset_checks, assets

defs = dg.Definitions(assets=assets, asset_checks=asset_checks)
