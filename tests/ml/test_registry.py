import contextlib
import importlib.metadata
import json
import os

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from ml import registry

REQUIREMENTS = [f"scikit-learn=={importlib.metadata.version('scikit-learn')}"]


@contextlib.contextmanager
def isolated_mlflow_state():
    """Put MLflow's process-wide URIs and active experiment back for the other test modules."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    from mlflow.tracking import fluent

    env = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id = saved
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            del os.environ[key]
        os.environ.update(env)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module: creating it runs every migration, which is slow."""
    root = tmp_path_factory.mktemp("mlflow")
    with isolated_mlflow_state():
        registry.configure(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
        experiment_id = registry.get_or_create_experiment("registry-tests", str(root / "artifacts"))
        yield {"root": root, "experiment_id": experiment_id}


def log_candidate(metrics: dict[str, float]) -> str:
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", pip_requirements=REQUIREMENTS)
        mlflow.log_metrics(metrics)
    return run.info.run_id


def aliases(model_name: str) -> dict[str, int]:
    return dict(MlflowClient().get_registered_model(model_name).aliases)


def test_experiment_artifacts_live_under_the_given_root(store):
    experiment = MlflowClient().get_experiment(store["experiment_id"])
    assert experiment.artifact_location == (store["root"] / "artifacts").as_uri() + "/registry-tests"
    assert registry.get_or_create_experiment("registry-tests", "/elsewhere") == store["experiment_id"]


def test_champion_moves_only_when_the_candidate_beats_it_by_the_margin(store):
    name = "churn-promotion"
    assert registry.champion_info(name) is None

    v1 = registry.register(log_candidate({"roc_auc": 0.700}), "model", name)
    promoted, reason = registry.promote_if_better(name, v1, "roc_auc")
    assert (promoted, reason) == (True, "no champion yet: v1 (roc_auc=0.7000) becomes champion")
    assert aliases(name) == {"champion": 1, "challenger": 1}

    v2 = registry.register(log_candidate({"roc_auc": 0.703}), "model", name)
    promoted, reason = registry.promote_if_better(name, v2, "roc_auc")
    assert not promoted
    assert reason == ("v2 roc_auc=0.7030 vs champion v1 0.7000: gain +0.0030 < margin 0.005 -> not promoted")
    assert aliases(name) == {"champion": 1, "challenger": 2}

    v3 = registry.register(log_candidate({"roc_auc": 0.705}), "model", name)
    promoted, reason = registry.promote_if_better(name, v3, "roc_auc")
    assert promoted and reason.endswith(">= margin 0.005 -> promoted")
    assert aliases(name) == {"champion": 3, "challenger": 3}
    assert MlflowClient().get_model_version(name, "3").tags["c360.promotion"] == reason

    champion = registry.champion_info(name)
    assert champion["version"] == 3 and champion["metrics"] == {"roc_auc": 0.705}
    assert champion["run_id"] == MlflowClient().get_model_version(name, "3").run_id

    assert registry.promote_if_better(name, v3, "roc_auc") == (False, "v3 is already the champion")


def test_lower_is_better_metrics_promote_on_a_decrease(store):
    name = "clv-promotion"
    registry.promote_if_better(name, registry.register(log_candidate({"rmse": 10.0}), "model", name), "rmse")
    worse = registry.register(log_candidate({"rmse": 10.5}), "model", name)
    assert registry.promote_if_better(name, worse, "rmse", higher_is_better=False)[0] is False
    better = registry.register(log_candidate({"rmse": 9.0}), "model", name)
    assert registry.promote_if_better(name, better, "rmse", higher_is_better=False, margin=0.5)[0] is True
    assert registry.champion_info(name)["version"] == better


def test_promotion_refuses_a_candidate_without_the_metric(store):
    name = "no-metric"
    version = registry.register(log_candidate({"pr_auc": 0.3}), "model", name)
    with pytest.raises(ValueError, match=r"has no metric 'roc_auc'; it has \['pr_auc'\]"):
        registry.promote_if_better(name, version, "roc_auc")
    assert aliases(name) == {}


def features_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "email": [f"person{i}@example.com" for i in range(n)],
            "as_of_date": pd.Timestamp("2024-07-01"),
            "recency_days": rng.exponential(50, n),
            "frequency_90d": rng.poisson(2, n),
            "churned": rng.integers(0, 2, n),
        }
    )


def test_lineage_records_source_tags_and_a_dataset_without_personal_columns(store):
    df = features_frame()
    with mlflow.start_run() as run:
        digest = registry.log_lineage(
            df,
            "marts.churn_features",
            as_of="2024-07-01",
            dagster_run_id="dagster-run-1",
            asset_key="ml/churn_model",
            dbt_version="1.11.0",
            git_sha="abc123",
            warehouse="duckdb:///data/warehouse.duckdb",
            targets="churned",
        )
    run = MlflowClient().get_run(run.info.run_id)
    assert {
        k: v for k, v in run.data.tags.items() if k.split(".")[0] in {"c360", "dagster", "dbt", "git"}
    } == {
        "c360.source_table": "marts.churn_features",
        "c360.as_of": "2024-07-01",
        "c360.dataset_digest": digest,
        "dagster.run_id": "dagster-run-1",
        "dagster.asset_key": "ml/churn_model",
        "dbt.version": "1.11.0",
        "git.sha": "abc123",
    }
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert dataset.digest == digest and dataset.name == "marts.churn_features"
    assert dataset.source_type == "c360_warehouse_table"
    assert (
        json.loads(dataset.source)["uri"] == "duckdb:///data/warehouse.duckdb#marts.churn_features@2024-07-01"
    )
    columns = [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]]
    assert columns == ["as_of_date", "recency_days", "frequency_90d", "churned"]
    assert json.loads(dataset.profile) == {"num_rows": 200, "num_elements": 800}
    for text in (dataset.schema, dataset.profile, dataset.source):
        assert "customer_id" not in text and "c00001" not in text and "example.com" not in text
    # from_pandas keeps the rows in memory only: nothing lands in the run's artifacts.
    assert MlflowClient().list_artifacts(run.info.run_id) == []


def test_lineage_accepts_a_digest_alone(store):
    with mlflow.start_run() as run:
        registry.log_lineage("d1g3st", "marts.customer_360", as_of=None, dbt_version="x", git_sha="y")
    (dataset_input,) = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert dataset_input.dataset.digest == "d1g3st"
    assert json.loads(dataset_input.dataset.source)["uri"].endswith("#marts.customer_360")


def test_lineage_needs_an_active_run(store):
    with pytest.raises(RuntimeError, match="needs an active MLflow run"):
        registry.log_lineage("d1g3st", "marts.customer_360")


def test_digest_covers_every_row_not_just_the_first_ones():
    df = pd.DataFrame({"x": np.arange(50_000, dtype=float)})
    changed = df.copy()
    changed.loc[49_999, "x"] = -1.0
    assert registry.dataset_digest(df) == registry.dataset_digest(df.copy())
    assert registry.dataset_digest(df) != registry.dataset_digest(changed)


def test_personal_columns_and_ids_are_dropped():
    assert list(registry.drop_personal_columns(features_frame()).columns) == [
        "as_of_date",
        "recency_days",
        "frequency_90d",
        "churned",
    ]
    assert list(registry.drop_personal_columns(pd.DataFrame(columns=["Order_ID", "amount"])).columns) == [
        "amount"
    ]


def test_git_sha_prefers_the_environment_and_falls_back_to_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_GIT_SHA", "feedbeef")
    assert registry.git_sha(tmp_path) == "feedbeef"
    monkeypatch.delenv("C360_GIT_SHA")
    assert registry.git_sha(tmp_path) == "unknown"


def test_dbt_version_is_the_installed_dbt_core():
    assert registry.dbt_version() == importlib.metadata.version("dbt-core")
