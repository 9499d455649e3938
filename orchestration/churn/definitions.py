"""Churn domain: the model, its promotion gate and the scores."""

import dagster as dg

from orchestration.churn.assets import churn_model, churn_scores
from orchestration.churn.checks import churn_champion_gate, churn_scores_valid

defs = dg.Definitions(
    assets=[churn_model, churn_scores], asset_checks=[churn_champion_gate, churn_scores_valid]
)
