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
