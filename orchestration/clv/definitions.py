"""Customer lifetime value domain: the model, its promotion gate and the scores."""

import dagster as dg

from orchestration.clv.assets import clv_model, clv_scores
from orchestration.clv.checks import clv_champion_gate, clv_scores_valid

defs = dg.Definitions(assets=[clv_model, clv_scores], asset_checks=[clv_champion_gate, clv_scores_valid])
