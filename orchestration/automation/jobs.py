"""The platform's jobs: what a daily refresh, a weekly retrain and a landing micro-batch build.

Selections are by group, resolved when the definitions load, so assets added by other domains
join the right job without editing this file.
"""

import dagster as dg

# Groups retrained weekly; everything else is refreshed daily (scoring assets read the champion).
ML_GROUPS = ("ml",)

# Transient failures (a DuckDB file lock held by a notebook, MLflow's SQLite busy, a slow disk)
# clear on their own; a data error fails again and is then alerted once.
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# The recommender's training asset sits in the "recommendations" group beside the rules and the
# placements it serves (how the UI shows them), but it is a retrain: fitted daily it cost the
# daily run a full EASE fit and a registry version a day. Scoring (ml/recommendations) stays daily.
# The cross-sell rules are mined the same way, over every basket ever recorded: a week of baskets
# barely moves them, yet mined daily they cost the daily run at 1M customers 51 s (of 1,144), and
# every anchor whose rule list moved in the fourth decimal had its customers' cart placements
# rescored. They are refreshed with the recommender; the daily scoring reads the last ones.
RETRAINED_OUTSIDE_ML_GROUPS = dg.AssetSelection.assets(
    dg.AssetKey(["ml", "recommender"]), dg.AssetKey(["ml", "cross_sell_rules"])
)
# The dbt models of the `features` schema (churn snapshots, CLV summaries, recommender touches and
# transitions, basket pairs, weekly units) are read only by the weekly training and scoring above;
# nothing the daily run builds or serves reads them. Built daily, `churn_features` alone cost the
# daily run 6.3 s of dbt at 100k customers and ~97 s at 1M, rebuilt in full every day (its
# snapshots move with the as-of date) for no reader. They are built by the weekly job, just before
# the models that read them; a full `c360 run` builds them as before.
ML_FEATURES = dg.AssetSelection.key_prefixes("features")
ML_SELECTION = dg.AssetSelection.groups(*ML_GROUPS) | ML_FEATURES | RETRAINED_OUTSIDE_ML_GROUPS
REFRESH_SELECTION = dg.AssetSelection.all() - ML_SELECTION

daily_refresh_job = dg.define_asset_job(
    "daily_refresh_job",
    selection=REFRESH_SELECTION,
    description="Loads new landing files and rebuilds staging, identity, marts and audiences "
    "(every asset outside the ML groups; scoring reads the current champion models).",
    op_retry_policy=TRANSIENT_RETRY,
    tags={"c360/trigger": "daily"},
)

weekly_retrain_job = dg.define_asset_job(
    "weekly_retrain_job",
    selection=ML_SELECTION,
    description="Retrains, evaluates and (through each model's promotion gate) registers the ML models.",
    op_retry_policy=TRANSIENT_RETRY,
    tags={"c360/trigger": "weekly"},
)

# The landing sensor requests a subset of this job: the ingest assets of the new files and
# everything downstream of them outside the ML groups.
landing_refresh_job = dg.define_asset_job(
    "landing_refresh_job",
    selection=REFRESH_SELECTION,
    description="Run by the landing sensor: new landing files and what depends on them.",
    op_retry_policy=TRANSIENT_RETRY,
    tags={"c360/trigger": "landing"},
)

WEB_EVENTS_KEY = dg.AssetKey(["raw", "web_events"])
# Run by the clickstream sensor: loads only web_events and refreshes the cart audience, so a
# cart shows up in seconds instead of after a full dbt build. Only the row-conservation gate runs
# here: the quality suite judges whole days (volume drift), which a micro-batch of a day in
# progress would fail; the daily refresh runs it.
cart_abandonment_job = dg.define_asset_job(
    "cart_abandonment_job",
    selection=dg.AssetSelection.assets(
        WEB_EVENTS_KEY, dg.AssetKey(["activation", "cart_abandoned"])
    ).without_checks()
    | dg.AssetSelection.checks(dg.AssetCheckKey(WEB_EVENTS_KEY, "rows_conserved")),
    description="Micro-batch: new web_events files -> raw.web_events -> activation.cart_abandoned.",
    tags={"c360/trigger": "clickstream", "dagster/priority": "10"},
    # Three small steps in a row: the multiprocess executor would start (and import the whole code
    # location in) a fresh process per step, most of the latency budget on a 2-core machine.
    executor_def=dg.in_process_executor,
)
