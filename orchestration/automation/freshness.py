"""Freshness policies: a mart not rebuilt within a day (or a model not retrained within a week)
shows as stale on its asset in the UI, with how late it is. Dagster evaluates the policies
itself (no checks or sensor to run)."""

from datetime import timedelta

import dagster as dg

MART_MODELS = ("identity_map", "customer_360", "customer_rfm", "customer_tags", "funnel_daily")
TRAINED_MODELS = ("ml/churn_model", "ml/clv_model", "ml/recommender")
# A daily schedule plus a couple of hours of slack for a slow or retried run.
MART_MAX_AGE = timedelta(hours=26)
MODEL_MAX_AGE = timedelta(days=8)


def with_freshness_policies(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with the marts' and the trained models' freshness policies attached."""
    marts = [f"marts/{name}" for name in MART_MODELS]
    return defs.map_resolved_asset_specs(
        func=lambda spec: spec.replace_attributes(
            freshness_policy=dg.FreshnessPolicy.time_window(MART_MAX_AGE)
        ),
        selection=dg.AssetSelection.from_string(" or ".join(f'key:"{k}"' for k in marts)),
    ).map_resolved_asset_specs(
        func=lambda spec: spec.replace_attributes(
            freshness_policy=dg.FreshnessPolicy.time_window(MODEL_MAX_AGE)
        ),
        selection=dg.AssetSelection.from_string(" or ".join(f'key:"{k}"' for k in TRAINED_MODELS)),
    )
