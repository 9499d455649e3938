"""Classification of every dbt column, the consent gate on audiences, the erasure job."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from c360.settings import DBT_PROJECT_DIR
from orchestration.privacy.checks import consent_check, customers_without_consent
from orchestration.resources import WarehouseResource

CLASSES = {"public", "internal", "sensitive"}


def _consent_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema intermediate")
        con.execute("create schema activation")
        con.execute(
            "create table intermediate.int_consent_latest as select * from (values "
            "('C1', 'email', true), ('C2', 'email', false), ('C3', 'sms', true), ('C4', 'email', true)) "
            "t(customer_id, channel, granted)"
        )
        con.execute(
            "create table activation.newsletter as select * from (values ('C1'), ('C4')) t(customer_id)"
        )
        con.execute(
            "create table activation.win_back as select * from (values ('C1'), ('C2'), ('C3'), ('C9')) t(customer_id)"
        )


def test_audience_of_consenting_customers_passes_and_others_are_named(tmp_path):
    _consent_warehouse(tmp_path / "w.duckdb")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert customers_without_consent(con, "activation.newsletter", "email") == (2, 0, [])
        # C2 opted out, C3 consented to sms only, C9 never decided: no consent, no marketing.
        assert customers_without_consent(con, "activation.win_back", "email") == (4, 3, ["C2", "C3", "C9"])


def test_consent_check_blocks_an_audience_with_people_lacking_consent(tmp_path):
    _consent_warehouse(tmp_path / "w.duckdb")
    resources = {"warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))}

    def audience(name: str) -> dg.AssetsDefinition:
        @dg.asset(key=["activation", name])
        def _audience() -> None:
            return None

        return _audience

    good, bad = audience("newsletter"), audience("win_back")
    checks = [
        consent_check(["activation", "newsletter"], "email"),
        consent_check("activation/win_back", "email"),
    ]
    assert all(spec.blocking for c in checks for spec in c.check_specs)
    result = dg.materialize([good, bad, *checks], resources=resources, raise_on_error=False)
    outcomes = {
        e.asset_key.to_user_string(): (e.passed, e.metadata["customers_without_consent"].value)
        for e in result.get_asset_check_evaluations()
    }
    assert outcomes == {"activation/newsletter": (True, 0), "activation/win_back": (False, 3)}
    with pytest.raises(ValueError, match="unknown consent channel"):
        consent_check("activation/newsletter", "fax")


def test_every_model_column_is_classified_in_the_manifest():
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    problems = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        if not node["columns"]:
            problems.append(f"{node['name']}: no columns documented")
        for name, column in node["columns"].items():
            cls = (column.get("meta") or {}).get("classification") or (column.get("config") or {}).get(
                "meta", {}
            ).get("classification")
            if cls not in CLASSES:
                problems.append(f"{node['name']}.{name}: {cls!r}")
    assert problems == []


def test_dbt_build_fails_naming_the_model_and_column_without_classification(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (project / "models" / "analytics" / "unclassified.sql").write_text(
        "select 1 as customer_id, 2 as secret\n"
    )
    (project / "models" / "analytics" / "_unclassified.yml").write_text(
        "version: 2\nmodels:\n  - name: unclassified\n    columns:\n"
        "      - {name: customer_id, meta: {classification: internal}}\n      - {name: secret}\n"
    )
    dbt = str(Path(sys.executable).parent / "dbt")
    env = {"C360_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    out = subprocess.run(
        [
            dbt,
            "run-operation",
            "assert_columns_classified",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        check=False,
    )
    assert out.returncode != 0
    assert "model 'unclassified' column 'secret' has no meta.classification" in out.stdout + out.stderr


def test_erasure_job_loads():
    from orchestration.privacy.definitions import defs

    assert defs.get_job_def("erasure_job").name == "erasure_job"
