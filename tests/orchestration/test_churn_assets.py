"""ml/churn_model, its champion gate, ml/churn_scores and the retention audience, materialized on
a copy of the demo warehouse (the session's `demo_home`, built through the real dbt models)."""

import json
import os
import shutil
import subprocess
import sys

import dagster as dg
import duckdb
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml import churn
from orchestration.activation.retention import build_audience, retention_high_risk
from orchestration.churn.assets import churn_model, churn_scores
from orchestration.churn.checks import churn_champion_gate, churn_scores_valid
from orchestration.resources import WarehouseResource

ASSETS = [churn_model, churn_champion_gate, churn_scores, churn_scores_valid, retention_high_risk]


def _materialize(warehouse, instance, run_config=None):
    return dg.materialize(
        ASSETS,
        resources={"warehouse": WarehouseResource(path=str(warehouse))},
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def churn_home(demo_home, tmp_path_factory):
    """Two runs on one copy: the first makes v1 champion; the second, with a margin no model can
    clear, registers v2 as challenger only."""
    home = tmp_path_factory.mktemp("churn_home")
    warehouse = home / "warehouse.duckdb"
    shutil.copy(demo_home / "warehouse.duckdb", warehouse)
    tracking_uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("C360_HOME", str(home))
        env.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        env.setenv("C360_MLFLOW_ARTIFACTS", str(home / "mlflow" / "artifacts"))
        env.setenv("C360_GIT_SHA", "0" * 40)
        env.delenv("C360_WAREHOUSE", raising=False)
        with dg.instance_for_test() as instance:
            first = _materialize(warehouse, instance)
            second = _materialize(
                warehouse,
                instance,
                {
                    "ops": {
                        "ml__churn_model": {
                            "config": {"promotion_margin": 1.0, "kinds": ["logreg"], "max_training_rows": 300}
                        }
                    }
                },
            )
        client = MlflowClient(tracking_uri=tracking_uri)
        yield {
            "home": home,
            "warehouse": warehouse,
            "first": first,
            "second": second,
            "client": client,
            "tracking_uri": tracking_uri,
        }


def test_definitions_load_with_the_platform():
    from orchestration.definitions import defs as platform

    def keys(definitions):
        return {k.to_user_string() for k in definitions.resolve_asset_graph().get_all_asset_keys()}

    graph = platform.resolve_asset_graph()
    assert {"ml/churn_model", "ml/churn_scores", "activation/retention_high_risk"} <= keys(platform)
    assert (
        dg.AssetKey(["features", "churn_features"])
        in graph.get(dg.AssetKey(["ml", "churn_model"])).parent_keys
    )


def test_every_customer_360_customer_gets_a_champion_score(churn_home):
    assert churn_home["first"].success and churn_home["second"].success
    con = duckdb.connect(str(churn_home["warehouse"]), read_only=True)
    try:
        missing, extra, rows, customers = con.execute(
            """
            select (select count(*) from marts.customer_360 where customer_id not in (select customer_id from ml.churn_scores)),
                   (select count(*) from ml.churn_scores where customer_id not in (select customer_id from marts.customer_360)),
                   (select count(*) from ml.churn_scores), (select count(*) from marts.customer_360)
            """
        ).fetchone()
        scores = con.execute("select * from ml.churn_scores").df()
    finally:
        con.close()
    assert (missing, extra, rows) == (0, 0, customers)
    assert list(scores.columns[:5]) == [
        "customer_id",
        "churn_probability",
        "risk_band",
        "model_version",
        "scored_at",
    ]
    assert scores["churn_probability"].between(0, 1).all()
    assert (scores["risk_band"] == scores["churn_probability"].map(churn.risk_band)).all()
    # The second run's model was not promoted: scores still come from v1, the champion.
    assert set(scores["model_version"]) == {1}


def test_gate_promotes_the_first_version_and_keeps_it_against_a_challenger_under_the_margin(churn_home):
    client = churn_home["client"]
    model = client.get_registered_model(churn.MODEL_NAME)
    # MLflow returns alias versions as int or str depending on the store.
    assert {alias: str(v) for alias, v in model.aliases.items()} == {"champion": "1", "challenger": "2"}
    first_gate = churn_home["first"].get_asset_check_evaluations()
    second_gate = churn_home["second"].get_asset_check_evaluations()
    gate = {e.check_name: e for e in first_gate}["churn_champion_gate"]
    assert gate.passed and gate.metadata["promoted"].value is True
    gate = {e.check_name: e for e in second_gate}["churn_champion_gate"]
    assert gate.passed and gate.metadata["promoted"].value is False
    assert "not promoted" in gate.metadata["reason"].value
    assert all(e.passed for e in first_gate + second_gate)


def test_training_rows_are_capped_by_config_and_the_cap_is_logged(churn_home):
    client = churn_home["client"]
    runs = [
        client.get_run(
            run.get_asset_materialization_events()[0].materialization.metadata["mlflow_run_id"].value
        )
        for run in (churn_home["first"], churn_home["second"])
    ]
    uncapped, capped = (r.data.metrics for r in runs)
    # The demo has fewer rows than the default cap: the first run fits on all of them.
    assert uncapped["train_rows"] == uncapped["train_rows_available"] > 300
    assert uncapped["labelled_rows"] == uncapped["labelled_rows_available"]
    assert capped["train_rows"] == capped["labelled_rows"] == 300
    assert capped["labelled_rows_available"] == uncapped["labelled_rows_available"]
    assert runs[1].data.params["max_training_rows"] == "300"


def test_training_run_logs_metrics_plots_model_and_lineage_without_customer_ids(churn_home):
    client = churn_home["client"]
    materialization = churn_home["first"].get_asset_materialization_events()[0].materialization
    meta = materialization.metadata
    run = client.get_run(meta["mlflow_run_id"].value)
    experiment_id = run.info.experiment_id
    assert (
        meta["mlflow_run"].value
        == f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run.info.run_id}"
    )
    for name in (
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "lift_top_decile",
        "capture_top_decile",
        "hgb_roc_auc",
    ):
        assert name in run.data.metrics
    # Boosted trees alone by default; the logistic regression is the eval's baseline.
    assert "logreg_roc_auc" not in run.data.metrics and run.data.params["kinds"] == "hgb"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"roc.png", "pr.png", "calibration.png", "lift.png", "feature_importance.png"} <= artifacts
    tags = run.data.tags
    from ml import registry

    assert tags[registry.TAG_SOURCE_TABLE] == "features.churn_features"
    assert tags[registry.TAG_DAGSTER_RUN_ID] == churn_home["first"].run_id
    assert tags[registry.TAG_DAGSTER_ASSET_KEY] == "ml/churn_model"
    assert registry.TAG_DBT_VERSION in tags and tags[registry.TAG_GIT_SHA] == "0" * 40
    dataset = run.inputs.dataset_inputs[0].dataset
    assert "customer_id" not in dataset.schema
    assert json.loads(dataset.source)["table"] == "features.churn_features"


def test_champion_loads_in_a_fresh_process_and_scores_features(churn_home):
    con = duckdb.connect(str(churn_home["warehouse"]), read_only=True)
    try:
        latest = con.execute(
            "select f.*, s.churn_probability from features.churn_features f join ml.churn_scores s "
            "using (customer_id, as_of_date) order by customer_id limit 25"
        ).df()
    finally:
        con.close()
    features_csv = churn_home["home"] / "features.csv"
    latest[churn.FEATURES].to_csv(features_csv, index=False)
    script = (
        "import sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model('models:/churn@champion')\n"
        f"p = model.predict(pd.read_csv({str(features_csv)!r}))\n"
        "print(' '.join(repr(float(x)) for x in p))\n"
    )
    env = dict(os.environ, MLFLOW_TRACKING_URI=churn_home["tracking_uri"])
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    predicted = [float(x) for x in done.stdout.split()]
    assert predicted == pytest.approx(latest["churn_probability"].tolist(), abs=1e-6)


def test_retention_audience_holds_only_high_risk_customers_with_consent_for_the_channel(churn_home):
    con = duckdb.connect(str(churn_home["warehouse"]), read_only=True)
    try:
        audience = con.execute(
            "select a.*, c.consent_email, c.consent_sms, c.consent_phone, c.consent_push "
            "from activation.retention_high_risk a join marts.customer_360 c using (customer_id)"
        ).df()
    finally:
        con.close()
    assert (audience["risk_band"] == "high").all()
    for row in audience.itertuples():
        if row.suggested_action == "nothing":
            assert row.channel is None or pd.isna(row.channel)
        else:
            assert getattr(row, f"consent_{row.channel}")


def test_audience_uses_phone_for_calls_and_drops_customers_without_consent():
    base = {
        "churn_probability": 0.9,
        "risk_band": "high",
        "model_version": 1,
        "rfm_segment": "important value",
        "consent_email": False,
        "consent_sms": False,
        "consent_phone": False,
        "consent_push": False,
    }
    candidates = pd.DataFrame(
        [
            {**base, "customer_id": "call_ok", "clv_tier": "platinum", "consent_phone": True},
            {**base, "customer_id": "call_no_phone", "clv_tier": "gold", "consent_email": True},
            {**base, "customer_id": "coupon_sms", "clv_tier": "silver", "consent_sms": True},
            {**base, "customer_id": "nothing_no_consent", "clv_tier": "bronze"},
            {**base, "customer_id": "nothing_push", "clv_tier": "bronze", "consent_push": True},
        ]
    )
    audience = build_audience(candidates).set_index("customer_id")
    assert sorted(audience.index) == ["call_ok", "coupon_sms", "nothing_push"]
    assert audience.loc["call_ok", ["suggested_action", "channel", "value_tier"]].tolist() == [
        "call",
        "phone",
        "high",
    ]
    assert audience.loc["coupon_sms", ["suggested_action", "channel"]].tolist() == ["coupon", "sms"]
    assert audience.loc["nothing_push", "suggested_action"] == "nothing"
