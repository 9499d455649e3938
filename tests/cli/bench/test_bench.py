"""The benchmark measures the real platform and compares it with a floor and a peer that compute
the same thing: these tests prove the "same thing" part at tiny scale (no timing assertions)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from cli.bench import landing as bench_landing
from cli.bench import platform
from cli.bench import report as report_module
from cli.bench.core import BenchError, check_free_disk, compile_core_models, scale_env
from cli.bench.floor import run_floor
from cli.bench.peer import run_peer
from cli.bench.report import HEADLINE


@pytest.fixture(scope="module")
def platform_copy(demo_home, tmp_path_factory) -> Path:
    """A private copy of the demo warehouse: dbt compile opens its warehouse for writing."""
    copy = tmp_path_factory.mktemp("platform") / "warehouse.duckdb"
    shutil.copy(demo_home / "warehouse.duckdb", copy)
    return copy


@pytest.fixture(scope="module")
def platform_marts(platform_copy) -> dict:
    return platform.marts_summary(platform_copy)


def _records(path: Path) -> list[bytes]:
    with open(path, "rb") as fh:
        return list(bench_landing._records(fh))


def test_held_out_slice_is_the_last_days_and_keeps_every_record_byte_for_byte(demo_home, tmp_path):
    source = demo_home / "landing"
    landing, held = tmp_path / "landing", tmp_path / "held"
    summary = bench_landing.prepare_landing(source, landing, held, days=7)

    assert summary.rows_held_out > 0 and 0 < summary.share < 0.05
    for rel in summary.files:
        new = held / rel
        original = source / new.parent.name / new.name.replace("_new", "")
        kept = landing / new.parent.name / original.name
        assert not kept.is_symlink()
        # The same header on both halves, and every original record in exactly one of them.
        assert _records(kept)[0] == _records(new)[0] == _records(original)[0]
        assert sorted(_records(kept)[1:] + _records(new)[1:]) == sorted(_records(original)[1:])
    new_orders = {
        line.split(b",")[0] for f in (held / "ecommerce_orders").glob("*.csv") for line in _records(f)[1:]
    }
    for f in (held / "ecommerce_order_items").glob("*.csv"):
        assert {line.split(b",")[1] for line in _records(f)[1:]} <= new_orders
    for f in (held / "web_events").glob("*.csv"):
        assert all(line.split(b",")[1] >= summary.cutoff[:10].encode() for line in _records(f)[1:])
    # Older months are not copied.
    assert any(p.is_symlink() for p in (landing / "web_events").iterdir())

    moved = bench_landing.release_held_out(held, landing)
    assert sorted(str(p.relative_to(landing)) for p in moved) == sorted(summary.files)


def test_the_loader_picks_up_only_the_new_days_on_the_second_load(demo_home, tmp_path):
    from c360.ingest.loader import load_source
    from c360.privacy.keys import Keyring
    from c360.warehouse import connect

    landing, held = tmp_path / "landing", tmp_path / "held"
    summary = bench_landing.prepare_landing(demo_home / "landing", landing, held, days=7)
    keyring = Keyring.generate()
    con = connect(tmp_path / "warehouse.duckdb")
    try:
        for name in ("products", "ecommerce_orders", "web_events"):
            load_source(con, name, landing, keyring)
        before = con.execute("select count(*) from raw.web_events").fetchall()[0][0]
        bench_landing.release_held_out(held, landing)
        loads, errors = load_source(con, "web_events", landing, keyring)
        after = con.execute("select count(*) from raw.web_events").fetchall()[0][0]
    finally:
        con.close()
    assert not errors
    new = [l for l in loads if not l.skipped]
    assert [l.file for l in new] == [f for f in summary.files if f.startswith("web_events/")]
    assert after - before == sum(l.rows_loaded for l in new) > 0


def test_floor_builds_exactly_the_platforms_customer_360_and_rfm(
    demo_home, platform_copy, platform_marts, tmp_path
):
    env = scale_env(demo_home) | {"C360_WAREHOUSE": str(platform_copy)}
    manifest = compile_core_models(env, tmp_path / "target", tmp_path / "logs")
    result = run_floor(
        demo_home / "landing", tmp_path / "floor" / "warehouse.duckdb", manifest, platform_copy
    )

    assert {"customer_360", "customer_rfm", "identity_map", "int_identity_components_resolved"} <= set(
        result["models"]
    )
    assert result["marts"] == platform_marts
    assert result["raw_rows"]["web_events"] > 0


def test_pandas_peer_agrees_with_the_platform_up_to_identity_resolution(demo_home, platform_marts):
    peer = run_peer(demo_home / "landing")["marts"]
    # Exact links only (no fuzzy names, no device stitching beyond logins): a few more, smaller people.
    assert peer["customers"] == pytest.approx(platform_marts["customers"], rel=0.15)
    assert peer["revenue"] == pytest.approx(platform_marts["revenue"], rel=0.05)
    assert set(peer["rfm_segments"]) == set(platform_marts["rfm_segments"])
    assert sum(peer["rfm_segments"].values()) == pytest.approx(
        sum(platform_marts["rfm_segments"].values()), rel=0.15
    )


def test_stage_timings_come_from_the_runs_dagster_event_log(demo_home, demo_run):
    steps = platform.run_steps(demo_home / "dagster", demo_run["run_id"])
    assert steps["status"] == "SUCCESS"
    assert all(steps["stages"][stage] > 0 for stage in ("ingest", "dbt build", "quality gates", "ml"))
    stage_of = {s["step"]: s["stage"] for s in steps["steps"]}
    assert stage_of["ingest_web_events"] == "ingest"
    assert stage_of["raw__web_events_quality_gate"] == "quality gates"
    assert stage_of["ml__churn_model"] == "ml"
    models = {
        r["name"]
        for r in platform.dbt_results(demo_run["run_id"], demo_home / "dbt" / "runs")
        if r["kind"] == "model"
    }
    assert {"customer_360", "customer_rfm", "int_identity_components_resolved"} <= models


@pytest.mark.slow
def test_bench_command_writes_the_headline_figures_per_scale(c360_home, tmp_path):
    from click.testing import CliRunner

    from cli.bench.command import bench_command

    results = tmp_path / "results.json"
    outcome = CliRunner().invoke(
        bench_command,
        [
            "--customers",
            "150",
            "--root",
            str(tmp_path / "bench"),
            "--no-incremental",
            "--results",
            str(results),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    report = json.loads((c360_home / "reports" / "bench.json").read_text())
    scale = report["scales"]["150"]
    assert set(HEADLINE) <= set(scale)
    assert scale["incremental_share"] is None  # not run, and said so
    assert scale["floor"]["marts"] == scale["platform_marts"]
    assert scale["independent_floor_matched"] is True, scale["independent_floor"]["comparison"]
    assert scale["independent_floor_s"] > 0 and scale["sql_vs_independent_floor"] > 0
    assert scale["peer"]["marts"]["customers"] > 0
    # Each step's peak memory, sampled while it ran: the run's peak is one of them.
    steps = scale["platform"]["steps"]
    assert all(0 < s["peak_rss_gib"] <= scale["platform"]["peak_rss_gib"] for s in steps)
    peaks = scale["platform"]["peak_rss_steps"]
    assert peaks and peaks[0]["peak_rss_gib"] == max(s["peak_rss_gib"] for s in steps)
    assert report["machine"]["cores"] >= 1 and len(report["load_avg_samples"][0]) == 3
    assert (c360_home / "reports" / "bench.md").read_text().startswith("# Benchmark run")
    committed = json.loads(results.read_text())["scales"]["150"]
    assert set(HEADLINE) <= set(committed) and committed["command"].startswith("c360 bench")
    assert committed["independent_floor_matched"] is True and committed["sql_vs_independent_floor"] > 0
    assert committed["peak_rss_steps"] == peaks
    assert committed["ml_steps_s"] == {s["step"]: s["seconds"] for s in steps if s["stage"] == "ml"}
    assert committed["sql_vs_independent_floor_core"] >= committed["sql_vs_independent_floor"] > 0
    # CPU-seconds beside the wall clock: the run's (wait4), per step and stage (sampled), the
    # floor's own; the run's steps cannot have used more CPU than the whole command.
    platform = scale["platform"]
    assert platform["cpu_s"] > 0 and all(s["cpu_s"] is not None for s in steps)
    assert set(platform["stages_cpu_s"]) >= {"ingest", "dbt build", "quality gates", "ml"}
    assert sum(platform["stages_cpu_s"].values()) <= platform["cpu_s"] + 1
    assert committed["end_to_end_cpu_s"] == platform["cpu_s"]
    assert committed["platform_pipeline_cpu_s"] == round(
        sum(platform["stages_cpu_s"][k] for k in ("ingest", "quality gates", "dbt build")), 2
    )
    assert 0 < committed["independent_floor_cpu_s"] <= scale["independent_floor"]["process_cpu_s"]
    assert committed["sql_vs_independent_floor_cpu"] == round(
        committed["platform_pipeline_cpu_s"] / committed["independent_floor_cpu_s"], 2
    )
    assert committed["incremental_share_cpu"] is None  # no daily run
    # The compaction ran after the last run (the full build here): the file it left is the size
    # it reports, no larger than before, and still holds the marts.
    comp = scale["compaction"]
    warehouse = tmp_path / "bench" / "150" / "home" / "warehouse.duckdb"
    assert 0 < comp["mb_after"] <= comp["mb_before"]
    assert comp["mb_after"] == round(warehouse.stat().st_size / 1e6, 1)
    assert committed["compaction_s"] == comp["wall_s"] > 0
    assert committed["compaction_mb_reclaimed"] == round(comp["mb_before"] - comp["mb_after"], 1)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        customers = con.execute("select count(*) from marts.customer_360").fetchone()[0]
    assert customers == scale["platform_marts"]["customers"]
    assert "compaction" in (c360_home / "reports" / "bench.md").read_text()
    # The floors' databases are gone once their figures are read (12 GiB each at L).
    assert not (tmp_path / "bench" / "150" / "floor").exists()
    assert not (tmp_path / "bench" / "150" / "independent_floor").exists()
    assert (tmp_path / "bench" / "150" / "home" / "warehouse.duckdb").exists()


def test_a_bench_that_would_not_fit_on_the_disk_is_refused_before_it_starts(tmp_path):
    gib = 1024**3
    root = tmp_path / "bench"
    # L needs about 55 GiB (42.5 with a reused landing); 30 GiB free is too little either way.
    with pytest.raises(BenchError, match=r"needs about 55\.0 GiB .* 30\.0 GiB is free") as refused:
        check_free_disk(root, {"L": 1_000_000}, landing_reused=False, free_bytes=30 * gib)
    assert str(root) in str(refused.value)
    with pytest.raises(BenchError, match=r"needs about 42\.5 GiB"):
        check_free_disk(root, {"L": 1_000_000}, landing_reused=True, free_bytes=30 * gib)
    # S and M together fit in 30 GiB; the real disk is asked when no figure is given.
    check_free_disk(root, {"S": 10_000, "M": 100_000}, landing_reused=False, free_bytes=30 * gib)
    check_free_disk(tmp_path / "not" / "made" / "yet", {"1": 1}, landing_reused=False)
    # An earlier bench's folder of the same scale is replaced, so its bytes count as free.
    # 150 customers need 8.9 MB: 8 MB free falls short, unless the old folder's 1 MB is counted.
    (root / "150").mkdir(parents=True)
    (root / "150" / "old.duckdb").write_bytes(b"x" * 1_000_000)
    check_free_disk(root, {"150": 150}, landing_reused=False, free_bytes=8_000_000)
    with pytest.raises(BenchError, match="is free"):
        check_free_disk(root, {"other": 150}, landing_reused=False, free_bytes=8_000_000)


@pytest.mark.parametrize("chain_first, in_process", [("1", "1"), ("0", "0"), ("auto", "1")])
def test_the_report_says_how_dbt_ran_its_nodes(monkeypatch, chain_first, in_process):
    # Runs with dbt's own order and with the longest chain first are compared in BENCHMARKS.md:
    # the report must say which one it measured.
    monkeypatch.setenv("C360_DBT_LONGEST_CHAIN_FIRST", chain_first)
    monkeypatch.setenv("C360_DBT_IN_PROCESS", in_process)
    machine = report_module.machine()
    assert machine["dbt_longest_chain_first"] is (chain_first == "1")
    assert machine["dbt_order"] == chain_first
    assert machine["dbt_in_process"] is (in_process == "1")
    text = report_module.markdown(
        {
            "machine": machine,
            "command": "c360 bench",
            "started_at": "now",
            "seconds": 1,
            "load_avg_samples": [],
            "scales": {},
        }
    )
    expected = {
        "1": "nodes longest chain first.",
        "0": "nodes in dbt's order.",
        "auto": "longest chain first on the full build, in dbt's order on the daily run",
    }[chain_first]
    assert expected in text and ("subprocess" in text) is (in_process == "0")
