"""What each dbt step costs before dbt runs a model: the parse state it starts from and the
start-up work of the dbt resource (the timings themselves are in benchmarks/notes)."""

import importlib.metadata
import json
import os
from types import SimpleNamespace

import msgpack
from packaging import version

from orchestration.dbt import project
from orchestration.dbt.definitions import defs
from orchestration.dbt.resource import DBT_EXECUTABLE, CustomerDbtCliResource


def _context(op: str, run_id: str) -> SimpleNamespace:
    return SimpleNamespace(
        op_execution_context=SimpleNamespace(op=SimpleNamespace(name=op)),
        run=SimpleNamespace(run_id=run_id),
    )


def _parse_events(target) -> list[str]:
    lines = (json.loads(line) for line in (target / "dbt.log").read_text().splitlines())
    return [
        line["info"]["msg"]
        for line in lines
        if line["info"]["name"]
        in ("UnableToPartialParse", "PartialParsingEnabled", "PartialParsingSkipParsing")
    ]


def test_a_new_run_folder_starts_from_the_newest_parse_state_of_this_home(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    runs = tmp_path / "dbt" / "runs"
    here = {"root_path": str(project.DBT_PROJECT_DIR)}
    for i, name in enumerate(["older", "newest"]):
        (runs / name).mkdir(parents=True)
        state = {"name": name, "nodes": {"seed.b": here, "model.a": here, "test.c": {}}}
        (runs / name / project.PARTIAL_PARSE).write_bytes(msgpack.packb(state))
        os.utime(runs / name / project.PARTIAL_PARSE, (1_000_000 + i, 1_000_000 + i))
    (runs / "no-state").mkdir()

    target = project.run_target_path(_context("dbt_models", "0123456789abcdef"))

    state = msgpack.unpackb((target / project.PARTIAL_PARSE).read_bytes(), strict_map_key=False)
    assert state["name"] == "newest"
    # A folder that already has a state keeps it.
    before = (runs / "older" / project.PARTIAL_PARSE).read_bytes()
    project.seed_partial_parse(runs / "older")
    assert (runs / "older" / project.PARTIAL_PARSE).read_bytes() == before
    # A state another checkout made (nodes rooted elsewhere) or one cut short (as while dbt
    # writes it) seeds nothing: dbt parses in full.
    elsewhere = {"name": "other", "nodes": {"seed.b": {"root_path": "/elsewhere/dbt_project"}}}
    for newest in (msgpack.packb(elsewhere), b"\x92\x01"):
        (target / project.PARTIAL_PARSE).write_bytes(newest)
        os.utime(target / project.PARTIAL_PARSE, (2_000_000, 2_000_000))
        project.seed_partial_parse(runs / "no-state")
        assert not (runs / "no-state" / project.PARTIAL_PARSE).exists()


def test_the_resource_skips_the_version_subprocess_and_the_adapter_handle():
    resource = defs.resources["dbt"]
    assert isinstance(resource, CustomerDbtCliResource)
    assert resource._cli_version == version.parse(importlib.metadata.version("dbt-core"))
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_the_second_dbt_step_of_a_home_parses_partially(tmp_path, monkeypatch):
    """The profile (warehouse path under C360_HOME) differs from the checkout's parse state, so
    the first step of a fresh home parses in full; every later step starts from its state."""
    monkeypatch.setenv("C360_HOME", str(tmp_path / "c360"))
    project.dbt_env()
    dbt = CustomerDbtCliResource(project_dir=project.dbt_project, dbt_executable=DBT_EXECUTABLE)

    first = project.run_target_path(_context("dbt_models", "aaaaaaaa11111111"))
    dbt.cli(["parse"], target_path=first, raise_on_error=True).wait()
    second = project.run_target_path(_context("dbt_models_2", "aaaaaaaa11111111"))
    dbt.cli(["parse"], target_path=second, raise_on_error=True).wait()

    assert not any(
        "partial parsing" in msg.lower() and "enabled" in msg.lower() for msg in _parse_events(first)
    )
    assert any("enabled" in msg.lower() for msg in _parse_events(second)), _parse_events(second)
    assert not any("profile has changed" in msg for msg in _parse_events(second))


def _build(*models: str):
    """``dbt build`` of ``models`` through the platform's dbt asset and resource, in this process."""
    import dagster as dg

    from orchestration.dbt.assets import dbt_key, dbt_models

    return dg.materialize(
        [dbt_models],
        selection=[dbt_key(m) for m in models],
        resources={"dbt": defs.resources["dbt"]},
        raise_on_error=False,
    )


def test_dbt_runs_in_the_run_process_parses_once_and_leaves_the_warehouse_free(demo_copy, monkeypatch):
    import subprocess

    import duckdb

    from orchestration.dbt import in_process
    from orchestration.dbt.assets import dbt_key

    home = demo_copy("warehouse.duckdb")
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_DBT_LONGEST_CHAIN_FIRST", raising=False)
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    started = []
    popen = subprocess.Popen

    def recording_popen(args, *rest, **kwargs):
        started.append(args)
        return popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("delete from marts.revenue_monthly")
    con.close()

    first = _build("revenue_monthly")

    assert first.success
    # dbt's queue in this process keeps dbt's own order unless C360_DBT_LONGEST_CHAIN_FIRST=1
    # (orchestration/dbt/scheduling.py).
    from dbt.graph.queue import GraphQueue

    assert GraphQueue.get.__module__ != "orchestration.dbt.scheduling"
    key = dbt_key("revenue_monthly")
    assert key in {e.asset_key for e in first.get_asset_materialization_events()}
    # dbt's tests of the model come back as the asset's checks, as from the CLI.
    checks = [e for e in first.get_asset_check_evaluations() if e.asset_key == key]
    assert checks and all(c.passed for c in checks)
    assert not [a for a in started if str(a[0] if isinstance(a, list) else a).endswith("dbt")]
    # The rows are back, and DuckDB lets this process open the file with settings other than
    # the dbt profile's: dbt's database was closed after the command (a Python asset after a dbt
    # step failed with "Can't open a connection to same database file with a different
    # configuration" before it was).
    con = duckdb.connect(str(home / "warehouse.duckdb"), config={"threads": 1, "memory_limit": "1GB"})
    assert con.execute("select count(*) from marts.revenue_monthly").fetchone()[0] > 0
    con.close()

    # The second command reuses the project parsed by the first.
    [(_, parsed)] = in_process._manifests.items()
    second = _build("revenue_monthly")
    assert second.success
    [(_, reused)] = in_process._manifests.items()
    assert reused is parsed


def test_a_failing_model_fails_the_step_with_dbts_error_and_frees_the_warehouse(demo_copy, monkeypatch):
    import duckdb

    home = demo_copy("warehouse.duckdb")
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("drop table intermediate.int_purchases_unioned")
    con.close()

    result = _build("revenue_monthly")

    assert not result.success
    [failure] = result.get_step_failure_events()
    message = str(failure.step_failure_data.error)
    assert "int_purchases_unioned" in message and "does not exist" in message, message
    con = duckdb.connect(str(home / "warehouse.duckdb"), config={"threads": 1})
    con.close()


def test_a_kept_parse_is_used_only_for_the_same_project_files_profile_and_settings(tmp_path):
    import shutil

    from orchestration.dbt.in_process import _manifest_key

    project_dir = tmp_path / "dbt_project"
    shutil.copytree(project.DBT_PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    env = {"DBT_PROJECT_DIR": str(project_dir), "C360_HOME": "/a", "DBT_TARGET_PATH": "/a/runs/1"}
    key = _manifest_key(["build", "--select", "x"], env)

    assert key is not None
    # Another step's folders: the same parse.
    assert _manifest_key(["build"], {**env, "DBT_TARGET_PATH": "/a/runs/2", "DBT_LOG_PATH": "/b"}) == key
    # Another home (warehouse path, so every node's database) or target: parse again.
    assert _manifest_key(["build"], {**env, "C360_HOME": "/b"}) != key
    assert _manifest_key(["build"], {**env, "C360_DBT_TARGET": "spark"}) != key
    # An edited model: parse again.
    model = project_dir / "models" / "marts" / "revenue_monthly.sql"
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 1_000_000_000))
    assert _manifest_key(["build"], env) != key
    # Parsing is the command's work, or it brings its own vars: never a kept parse.
    assert _manifest_key(["parse"], env) is None
    assert _manifest_key(["build", "--vars", "{a: 1}"], env) is None
