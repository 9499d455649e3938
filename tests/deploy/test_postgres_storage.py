"""Dagster's run, event and schedule storage on a real PostgreSQL server (the deployment
profile in deploy/dagster.yaml): a small real run lands its run and events in PostgreSQL."""

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from c360.settings import PROJECT_ROOT

pytestmark = pytest.mark.postgres

PG_SCRIPT = PROJECT_ROOT / ".ci" / "postgres"


def _server_url() -> str:
    """C360_TEST_PG_URL if CI exported it, else start one with .ci/postgres (installing
    PostgreSQL from Debian packages when root), else skip."""
    if os.environ.get("C360_TEST_PG_URL"):
        return os.environ["C360_TEST_PG_URL"]
    has_binaries = shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    can_install = os.geteuid() == 0 and shutil.which("apt-get")
    if not (has_binaries or can_install):
        pytest.skip(
            "PostgreSQL is not installed (no pg_ctl/initdb) and cannot be installed without root and apt-get"
        )
    done = subprocess.run([str(PG_SCRIPT)], check=False, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f".ci/postgres could not start a server: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().split("=", 1)[1]


@pytest.fixture
def pg_database():
    import psycopg2

    url = _server_url()
    name = f"c360_test_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    admin.cursor().execute(f"create database {name}")
    yield url.rsplit("/", 1)[0] + "/" + name
    admin.cursor().execute(f"drop database {name} with (force)")
    admin.close()


def test_a_run_and_its_events_are_stored_in_postgres(c360_home, pg_database, tmp_path, monkeypatch):
    import dagster as dg
    import psycopg2

    from c360.generate import generate
    from c360.settings import get_settings
    from orchestration.ingest.assets import ingest_assets
    from orchestration.ingest.checks import ingest_checks
    from orchestration.resources import WarehouseResource

    dagster_home = tmp_path / "dagster_pg"
    dagster_home.mkdir()
    # deploy/dagster.yaml's storage section, pointed at the test database by environment.
    profile = (PROJECT_ROOT / "deploy" / "dagster.yaml").read_text()
    (dagster_home / "dagster.yaml").write_text(profile)
    url = urlsplit(pg_database)
    for name, value in {
        "DAGSTER_PG_USERNAME": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_HOST": url.hostname,
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_DB": url.path.lstrip("/"),
    }.items():
        monkeypatch.setenv(name, value)
    generate(get_settings().landing, customers=30, seed=3, progress=False)
    products = [a for a in ingest_assets if dg.AssetKey(["raw", "products"]) in a.keys]
    checks = [
        c for c in ingest_checks if dg.AssetKey(["raw", "products"]) in {k.asset_key for k in c.check_keys}
    ]

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        result = dg.materialize(
            [*products, *checks], instance=instance, resources={"warehouse": WarehouseResource()}
        )
        assert result.success
        assert [e.passed for e in result.get_asset_check_evaluations()] == [True]

    con = psycopg2.connect(pg_database)
    cur = con.cursor()
    cur.execute("select status from runs where run_id = %s", [result.run_id])
    assert cur.fetchall() == [("SUCCESS",)]
    cur.execute(
        "select dagster_event_type, count(*) from event_logs where run_id = %s group by 1", [result.run_id]
    )
    events = dict(cur.fetchall())
    assert events["ASSET_MATERIALIZATION"] == 1
    assert events["ASSET_CHECK_EVALUATION"] == 1
    cur.execute("select count(*) from asset_keys where asset_key = %s", ['["raw", "products"]'])
    assert cur.fetchone()[0] == 1
    con.close()
