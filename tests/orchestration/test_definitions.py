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
