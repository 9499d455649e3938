"""Recommendations domain: cross-sell rules, the recommender with its promotion gate, and the
placements served on site."""

import dagster as dg

from orchestration.recommendations.assets import cross_sell_rules, recommendations, recommender_model
from orchestration.recommendations.checks import (
    cross_sell_rules_valid,
    recommendations_valid,
    recommender_champion_gate,
)

defs = dg.Definitions(
    assets=[cross_sell_rules, recommender_model, recommendations],
    asset_checks=[recommender_champion_gate, cross_sell_rules_valid, recommendations_valid],
)
