"""Every registered model can be served: each champion carries a signature and an input example,
and ``mlflow models serve`` (a real server process on a loopback port, the local environment)
answers the churn model with the probabilities ``ml.churn_scores`` holds and the recommender with
product ids, for a known customer and for one it has never seen."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import duckdb
import mlflow
import pandas as pd
import pytest

from cli.bench.app_pages import stop_process_group
from ml import churn

BIN = Path(sys.executable).parent
START_TIMEOUT_S = float(os.environ.get("C360_SERVE_START_TIMEOUT", "240"))
MODELS = ("churn", "clv", "recommender")


def tracking_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(model_uri: str, home: Path, log: Path):
    """``mlflow models serve`` of ``model_uri`` in its own process group; yields its base URL once
    ``/health`` answers, and kills the group at the end."""
    port = free_port()
    # The registry too: an MLFLOW_REGISTRY_URI in this process's environment (mlflow.set_registry_uri
    # writes one) would otherwise send the server to another store.
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri(home),
        "MLFLOW_REGISTRY_URI": tracking_uri(home),
        "C360_HOME": str(home),
    }
    # The server runs `uvicorn` by name: the virtualenv's, even when pytest was started by path.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{model_uri} server exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{model_uri} not serving after {START_TIMEOUT_S:.0f}s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(1)
        yield base
    finally:
        stop_process_group(proc)


def invoke(base: str, frame: pd.DataFrame, params: dict | None = None) -> list:
    payload = {"dataframe_split": frame.to_dict(orient="split", index=False)}
    if params:
        payload["params"] = params
    request = urllib.request.Request(
        f"{base}/invocations",
        # NaN (a feature the customer has no data for) travels as JSON's NaN literal, which the
        # scoring server reads back as NaN.
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["predictions"]


def query(home: Path, sql: str, *params) -> pd.DataFrame:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).df()
    finally:
        con.close()


@pytest.mark.parametrize("name", MODELS)
def test_every_champion_has_a_signature_and_an_input_example(demo_home, name):
    mlflow.set_registry_uri(tracking_uri(demo_home))
    mlflow.set_tracking_uri(tracking_uri(demo_home))
    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    assert info.signature is not None and info.signature.inputs is not None
    assert info.signature.outputs is not None
    assert info.saved_input_example_info is not None, f"{name} has no input example"


@pytest.mark.slow
def test_served_churn_model_answers_what_churn_scores_holds(demo_copy, tmp_path):
    # A copy: serving a registered model from a local store writes a file into the store.
    demo_home = demo_copy()
    latest = query(
        demo_home,
        "select * from features.churn_features "
        "where as_of_date = (select max(as_of_date) from features.churn_features) "
        "order by customer_id limit 2",
    )
    stored = query(
        demo_home,
        "select customer_id, churn_probability from ml.churn_scores where customer_id in (select unnest(?))",
        list(latest["customer_id"]),
    ).set_index("customer_id")["churn_probability"]
    assert len(stored) == 2
    with served("models:/churn@champion", demo_home, tmp_path / "serve_churn.log") as base:
        predictions = invoke(base, latest[churn.FEATURES])
    scores = [p["churn_probability"] if isinstance(p, dict) else p for p in predictions]
    assert scores == pytest.approx(list(stored[latest["customer_id"]]), abs=1e-9)


@pytest.mark.slow
def test_served_recommender_answers_known_and_unknown_customers(demo_copy, tmp_path):
    demo_home = demo_copy()
    # The customer with the longest history, passed along as comma-separated product ids.
    known = query(
        demo_home,
        "select customer_id, string_agg(distinct cast(product_id as varchar), ',') as history "
        "from intermediate.int_interactions_weighted group by customer_id "
        "order by count(distinct product_id) desc, customer_id limit 1",
    )
    request = pd.concat(
        [known, pd.DataFrame({"customer_id": ["never-seen-customer"], "history": [""]})], ignore_index=True
    )
    catalogue = set(query(demo_home, "select cast(product_id as varchar) as p from raw.products")["p"])
    with served("models:/recommender@champion", demo_home, tmp_path / "serve_recommender.log") as base:
        answer = pd.DataFrame(invoke(base, request, {"k": 5}))
    assert set(answer["customer_id"]) == set(request["customer_id"])
    assert set(answer["product_id"]) <= catalogue
    mine = answer[answer["customer_id"] == known["customer_id"][0]]
    stranger = answer[answer["customer_id"] == "never-seen-customer"]
    assert len(mine) == 5 and len(stranger) == 5
    assert set(stranger["reason"]) == {"popular"}
    assert "personal" in set(mine["reason"])
    # The server answers what the model answers in process.
    mlflow.set_registry_uri(tracking_uri(demo_home))
    mlflow.set_tracking_uri(tracking_uri(demo_home))
    local = mlflow.pyfunc.load_model("models:/recommender@champion").predict(request, params={"k": 5})
    assert list(answer["product_id"]) == list(local["product_id"])
    assert list(answer["reason"]) == list(local["reason"])
