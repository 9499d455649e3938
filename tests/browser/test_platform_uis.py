"""The Dagster and MLflow UIs, the dbt docs and the Data Docs in headless Chromium against the demo
platform: the asset catalog shows customer_360, the registry the champion model, the dbt docs
customer_360's page with its columns, the Data Docs the gates' suites."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_dagster_asset_catalog_shows_customer_360(page, dagster_url, screenshots):
    page.goto(f"{dagster_url}/assets/marts/customer_360")
    page.get_by_text("customer_360").first.wait_for(timeout=120_000)
    page.wait_for_timeout(2000)  # the UIs poll, so "network idle" may never come
    page.screenshot(path=str(screenshots / "dagster_customer_360.png"))


def champion_model(demo_home) -> str:
    """``churn`` once it is registered with alias champion, else ``clv`` (registered by the CLV asset)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{demo_home / 'mlflow' / 'mlflow.db'}")
    names = {m.name: m.aliases for m in client.search_registered_models()}
    return "churn" if "champion" in (names.get("churn") or {}) else "clv"


def test_mlflow_registry_shows_the_champion_model(page, mlflow_url, demo_home, screenshots):
    name = champion_model(demo_home)
    page.goto(f"{mlflow_url}/#/models")
    page.get_by_role("link", name=name, exact=True).first.wait_for(timeout=120_000)
    page.screenshot(path=str(screenshots / "mlflow_models.png"))

    page.goto(f"{mlflow_url}/#/models/{name}")
    page.get_by_text("champion").first.wait_for(timeout=120_000)
    page.wait_for_timeout(2000)  # the UIs poll, so "network idle" may never come
    page.screenshot(path=str(screenshots / f"mlflow_{name}_champion.png"))


def test_dbt_docs_show_customer_360_with_its_columns(page, dbt_docs_url, screenshots):
    page.goto(f"{dbt_docs_url}/#!/model/model.customer_360.customer_360")
    # The project tree holds hidden copies of every name: wait for the model page's own.
    page.locator("text=customer_360 table >> visible=true").first.wait_for(timeout=120_000)
    page.locator("text=customer_id >> visible=true").first.wait_for(timeout=60_000)
    page.screenshot(path=str(screenshots / "dbt_docs_customer_360.png"))


def test_data_docs_show_a_quality_gates_validation(page, data_docs_url, demo_home, screenshots):
    from c360.settings import Settings

    # The page a gate check links to. (The index builds its list with scripts from public CDNs,
    # so it stays empty on a machine without internet; the validation pages are plain HTML.)
    site = Settings(demo_home).data_docs_site
    validation = max(site.glob("validations/raw/ecommerce_orders/**/*.html"), key=lambda p: p.stat().st_mtime)
    page.goto(f"{data_docs_url}/{validation.relative_to(site).as_posix()}")
    page.locator("text=raw.ecommerce_orders >> visible=true").first.wait_for(timeout=120_000)
    page.locator("text=order_id >> visible=true").first.wait_for(timeout=60_000)
    page.screenshot(path=str(screenshots / "data_docs.png"))
