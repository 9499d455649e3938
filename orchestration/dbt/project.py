"""The one DbtProject of the platform, and how its manifest gets built."""

from __future__ import annotations

import os

from dagster_dbt import DbtProject

from c360.settings import DBT_PROJECT_DIR, get_settings

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_env() -> None:
    """dbt runs with the project folder as working directory: give it absolute paths."""
    settings = get_settings()
    os.environ["C360_HOME"] = str(settings.home)
    os.environ.setdefault("C360_WAREHOUSE", str(settings.warehouse))


def prepare_manifest(force: bool = False) -> None:
    """Parse the dbt project in process (about 5 s) when the manifest is missing or forced,
    so a fresh clone works without a manual `dbt parse`."""
    if dbt_project.manifest_path.exists() and not force:
        return
    from dbt.cli.main import dbtRunner

    dbt_env()
    result = dbtRunner().invoke(
        ["parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"]
    )
    if not result.success:
        raise RuntimeError(f"dbt parse failed: {result.exception}")


dbt_project.prepare_if_dev()
prepare_manifest()
