"""Shared fixtures: one small demo platform, built once per test session and shared by the
xdist workers (a file lock makes the first worker build it, the others wait and reuse it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from filelock import FileLock

DEMO_CUSTOMERS = 400
DEMO_SEED = 7


def _build_demo(home: Path) -> dict:
    from c360.generate import generate
    from c360.privacy.keys import Keyring, key_file_path, write_key_file
    from c360.settings import get_settings
    from cli.runner import materialize

    os.environ["C360_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    # Paths derived from another home (set by an earlier test in this process) must not leak in.
    for var in ("C360_WAREHOUSE", "MLFLOW_TRACKING_URI", "C360_LANDING", "C360_KEY_FILE", "C360_KEYS_DIR"):
        os.environ.pop(var, None)
    settings = get_settings()
    # Fixed keys, not fresh random ones: the pseudonyms name the identity components, so the
    # customer ids (and the campaign holdouts, an md5 of the id) differed with every build, and
    # the campaign eval's one seeded draw with them (its planted segment measured 34 against 38
    # people in one build, 50 against 52 in another). The same data now builds the same platform.
    write_key_file(
        Keyring("k1", {"k1": bytes(range(32))}, bytes(range(32, 64)), "tests"), key_file_path(settings)
    )
    generate(settings.landing, customers=DEMO_CUSTOMERS, seed=DEMO_SEED, progress=False)
    result = materialize()
    return {
        "success": result.success,
        "run_id": result.run_id,
        "materialized": result.materialized,
        "checks_passed": result.checks_passed,
        "checks_failed": result.checks_failed,
        "failures": result.failures,
    }


@pytest.fixture(autouse=True)
def _mlflow_environment_restored():
    """``mlflow.set_tracking_uri`` and ``set_registry_uri`` (``registry.configure()`` calls both)
    also write MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI into the environment, and
    ``c360.settings`` reads MLFLOW_TRACKING_URI as a chosen store. A test that pointed MLflow at
    its own store left the later tests of its process there: the demo champion was looked up in
    test_models' store and not found (test_placements after tests/ml/recommendations/test_models.py
    and test_recommendation_assets.py in one process). Each test ends with the two variables as
    it found them."""
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory, worker_id) -> Path:
    """A C360_HOME holding a fully materialized platform on generated data. Treat it as
    read-only: copy it (``demo_copy``) to change anything."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    home = root / "demo_home"
    done = root / "demo_home.json"
    with FileLock(str(root / "demo_home.lock")):
        if not done.exists():
            done.write_text(json.dumps(_build_demo(home)))
    os.environ["C360_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    for var in ("C360_WAREHOUSE", "MLFLOW_TRACKING_URI", "C360_LANDING"):
        os.environ.pop(var, None)
    return home


@pytest.fixture(scope="session")
def demo_copy(demo_home, tmp_path_factory):
    """``demo_copy(*parts)``: a private copy of parts of the demo home (default: the warehouse and
    the MLflow store) in a new C360_HOME folder, for tests that change it or check that nothing
    did. MLflow's store names artifact folders and dataset sources by absolute path, so the
    copy's are rewritten to point into the copy: reading its models never touches the shared home
    (loading a registered model from a local store writes a ``registered_model_meta`` file
    beside it)."""
    import shutil
    import sqlite3

    def copy(*parts: str) -> Path:
        home = tmp_path_factory.mktemp("demo_copy") / "c360"
        home.mkdir()
        for part in parts or ("warehouse.duckdb", "mlflow"):
            source = demo_home / part
            if source.is_dir():
                shutil.copytree(source, home / part)
            else:
                shutil.copy2(source, home / part)
        store = home / "mlflow" / "mlflow.db"
        if store.exists():
            con = sqlite3.connect(store)
            try:
                tables = [t for (t,) in con.execute("select name from sqlite_master where type = 'table'")]
                for table in tables:
                    for column in [row[1] for row in con.execute(f'pragma table_info("{table}")')]:
                        con.execute(
                            f'update "{table}" set "{column}" = replace("{column}", ?, ?) '
                            f'where typeof("{column}") = \'text\' and instr("{column}", ?) > 0',
                            (str(demo_home), str(home), str(demo_home)),
                        )
                con.commit()
            finally:
                con.close()
        return home

    return copy


@pytest.fixture(scope="session")
def dbt_invoke():
    """``dbt_invoke(command, target_path, *args)``: a dbt command in this process (dbtRunner costs
    ~0.3 s a call after the first, the CLI 6-8 s), with its own target path so the project's
    dbt_project/target (manifest, partial parse) stays untouched. Reads $C360_HOME's warehouse;
    returns dbt's result (tests of failing dbt tests read it)."""
    from dbt.cli.main import dbtRunner

    from c360.settings import DBT_PROJECT_DIR

    def invoke(command: str, target_path, *args: str):
        return dbtRunner().invoke(
            [
                command,
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(target_path),
                *args,
            ]
        )

    return invoke


@pytest.fixture(scope="session")
def dbt_run(dbt_invoke):
    """``dbt_run(target_path, select, *args)``: ``dbt run`` of ``select`` (``dbt_invoke``), which
    must succeed."""

    def run(target_path, select: str, *args: str) -> None:
        result = dbt_invoke("run", target_path, "--select", select, *args)
        assert result.success, result.exception

    return run


@pytest.fixture(scope="session")
def dbt_build_in_subprocess():
    """``build(warehouse, select, workdir)``: ``dbt run --select <select>`` on ``warehouse`` in a
    dbt process of its own (in-process dbt-duckdb keeps its connection to the file open, which a
    later writer in this process would trip over), for tests that build a few models over tables
    they made themselves."""
    return _dbt_build_in_subprocess


def _dbt_build_in_subprocess(warehouse: Path, select: str, workdir: Path) -> None:
    import subprocess
    import sys

    from c360.settings import DBT_PROJECT_DIR

    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "run",
            "--select",
            select,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(workdir / "dbt_target"),
            "--log-path",
            str(workdir / "dbt_logs"),
        ],
        check=False,
        env=dict(os.environ, C360_WAREHOUSE=str(warehouse)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.fixture(scope="session")
def demo_run(demo_home) -> dict:
    root = demo_home.parent
    return json.loads((root / "demo_home.json").read_text())


@pytest.fixture
def c360_home(tmp_path, monkeypatch) -> Path:
    """An empty C360_HOME with development keys, for tests that build their own state."""
    from c360.privacy.keys import ensure_dev_keys
    from c360.settings import get_settings

    home = tmp_path / "c360"
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for var in ("C360_WAREHOUSE", "MLFLOW_TRACKING_URI", "C360_LANDING"):
        monkeypatch.delenv(var, raising=False)
    ensure_dev_keys(get_settings())
    return home


@pytest.fixture(scope="session")
def loaded_home(tmp_path_factory):
    """300 generated customers loaded into raw (no dbt): the warehouse file and landing folder."""
    from c360.generate import generate
    from c360.ingest.loader import load_source, quarantine_duplicate_orders
    from c360.privacy.keys import Keyring
    from c360.warehouse import connect

    home = tmp_path_factory.mktemp("c360")
    generate(home / "landing", customers=300, seed=7, progress=False)
    keyring = Keyring.generate()
    con = connect(home / "warehouse.duckdb")
    for source in ("products", "crm_customers", "ecommerce_orders", "ecommerce_order_items"):
        load_source(con, source, home / "landing", keyring)
    quarantine_duplicate_orders(con, "test")
    for source in (
        "web_events",
        "pos_transactions",
        "service_tickets",
        "product_reviews",
        "marketing_consent",
    ):
        load_source(con, source, home / "landing", keyring)
    con.close()
    return home
