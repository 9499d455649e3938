"""Demand forecasting domain: weekly units per category."""

import dagster as dg

from orchestration.forecast.assets import demand_forecast

defs = dg.Definitions(assets=[demand_forecast])
