import dagster as dg

from orchestration.definitions import defs


def test_definitions_load_with_the_whole_graph():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"raw/crm_customers", "raw/web_events", "marts/customer_360", "marts/identity_map"} <= keys
    graph = repo.asset_graph
    upstream = graph.get(dg.AssetKey(["marts", "customer_360"])).parent_keys
    assert upstream, "customer_360 must depend on intermediate models"


def test_dbt_tests_are_asset_checks():
    repo = defs.get_repository_def()
    checks = repo.asset_graph.asset_check_keys
    assert any(c.asset_key == dg.AssetKey(["marts", "customer_360"]) for c in checks)
    assert any(c.name == "rows_conserved" for c in checks)


def test_models_are_retrained_by_the_weekly_job_only_and_the_daily_job_keeps_serving():
    """The daily refresh must not refit a registered model (the recommender used to be refitted
    every day because its group is "recommendations", not "ml"); together the jobs cover the graph."""
    from orchestration.automation.jobs import daily_refresh_job, weekly_retrain_job

    graph = defs.resolve_asset_graph()
    daily = {k.to_user_string() for k in daily_refresh_job.selection.resolve(graph)}
    weekly = {k.to_user_string() for k in weekly_retrain_job.selection.resolve(graph)}
    trained = {"ml/churn_model", "ml/recommender", "ml/clv_model"}  # each registers an MLflow model
    assert trained <= weekly
    assert not trained & daily
    assert {"ml/recommendations", "marts/customer_360", "raw/web_events"} <= daily
    # Mined over every basket, like a model: refreshed with the recommender, read by daily scoring.
    assert "ml/cross_sell_rules" in weekly
    # The feature tables have no daily reader: built for (and by) the weekly job only.
    assert {
        "features/churn_features",
        "features/recommender_touches",
        "features/clv_customer_summary",
    } <= weekly
    assert not any(key.startswith("features/") for key in daily)
    everything = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert daily | weekly == everything


def test_the_bench_times_exactly_the_daily_refresh_job_as_its_incremental_run():
    from cli.bench.core import DAILY_SELECTION
    from orchestration.automation.jobs import daily_refresh_job

    graph = defs.resolve_asset_graph()
    assert dg.AssetSelection.from_string(DAILY_SELECTION).resolve(
        graph
    ) == daily_refresh_job.selection.resolve(graph)
