"""One benchmark scale end to end: generate, full platform run, floor, independent floor, pandas
peer, incremental.

Each scale gets a fresh ``C360_HOME`` under the bench root; every stage runs in a child
process (``c360 generate``, ``c360 run``, ``python -m cli.bench.floor`` / ``.peer``) whose
wall clock and peak RSS are measured from outside, and the platform's per-step timings are
read back from that home's Dagster event log and dbt's run results.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

from c360.settings import DBT_PROJECT_DIR
from cli.bench import landing as bench_landing
from cli.bench import platform
from cli.bench.floor import TARGETS
from cli.bench.measure import GIB, StageRun, c360_stage, cpu_between, peak_between, python_stage, run_stage

SCALES = {"S": 10_000, "M": 100_000, "L": 1_000_000}
# Issue 18's stages: everything before the ML assets (`platform_pipeline_s`, its CPU-seconds).
PIPELINE_STAGES = ("ingest", "quality gates", "dbt build")
# Variables naming another home's paths would point the bench's fresh home elsewhere.
FOREIGN_PATHS = (
    "C360_WAREHOUSE",
    "C360_LANDING",
    "MLFLOW_TRACKING_URI",
    "C360_MLFLOW_ARTIFACTS",
    "C360_KEYS_DIR",
    "C360_KEY_FILE",
    "DAGSTER_HOME",
)


# Disk a scale holds at its peak, per million customers, measured at L on 2026-12-06: the generated
# landing (12.4 GiB), the platform's home (13 GiB, its warehouse 11.7) and the raw-SQL floor's
# warehouse with DuckDB's spill files beside it (24 GiB at its largest): about 50 GiB, and a tenth
# more to spare. The floors' databases are deleted once their figures are read; the compaction's
# copy of the warehouse (its size again, at the end) comes after that, within the floor's peak. A
# bench that ran out of disk in the floor lost the 27 minutes of its full build; this check refuses
# up front.
DISK_GIB_PER_MILLION_CUSTOMERS = 55.0
LANDING_GIB_PER_MILLION_CUSTOMERS = 12.5


class BenchError(RuntimeError):
    """A stage failed; the message names it and ends with its log's tail."""


def check_free_disk(
    root: Path, scales: dict[str, int], landing_reused: bool, free_bytes: int | None = None
) -> None:
    """Refuse a bench whose scales (name -> customers) would not fit on the disk under ``root``
    (each scale keeps its folder until the end), naming what it needs and what is free. A
    scale's folder left by an earlier bench counts as free: the bench replaces it."""
    per_million = DISK_GIB_PER_MILLION_CUSTOMERS - (
        LANDING_GIB_PER_MILLION_CUSTOMERS if landing_reused else 0
    )
    customers = list(scales.values())
    needed = sum(customers) / 1e6 * per_million
    if free_bytes is None:
        existing = root
        while not existing.exists():
            existing = existing.parent
        free_bytes = shutil.disk_usage(existing).free
    free = (free_bytes + sum(_dir_bytes(root / name) for name in scales if (root / name).is_dir())) / GIB
    if free < needed:
        raise BenchError(
            f"not enough disk under {root}: the bench needs about {needed:,.1f} GiB "
            f"({per_million:g} GiB per million customers, {sum(customers):,} customers) and "
            f"{free:,.1f} GiB is free. Free some space or give --root on a larger disk."
        )


def scale_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_PATHS}
    env["C360_HOME"] = str(home)
    env["DAGSTER_HOME"] = str(home / "dagster")
    return env


def _check(stage: str, run: StageRun) -> StageRun:
    if run.returncode != 0:
        raise BenchError(f"{stage} failed (exit {run.returncode}); log {run.log}:\n{run.tail()}")
    return run


def generation_seconds(log: Path) -> float | None:
    """Seconds from a `c360 generate` log (its own line, or `time`'s real m:s)."""
    if not log.exists():
        return None
    text = log.read_text(errors="replace")
    if m := re.search(r"^real\s+(\d+)m([\d.]+)s", text, re.MULTILINE):
        return round(int(m[1]) * 60 + float(m[2]), 1)
    if m := re.search(r"wrote \d+ files to .* in ([\d.]+) s", text):
        return float(m[1])
    return None


def default_end_date() -> str:
    """The generator's own default end date, so every bench run at a scale generates the same
    bytes whatever the day. (Planted future timestamps are anchored 2-5 years after the end date,
    so they stay in the future for the loader's wall-clock check.)"""
    import inspect

    from c360.generate.core import generate

    return inspect.signature(generate).parameters["end_date"].default


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def compile_core_models(env: dict[str, str], target: Path, logs: Path) -> Path:
    """`dbt compile` of the floor's models against the built warehouse, so ``source_or_empty``
    resolves as it did in the platform run; returns the manifest path."""
    select = [f"+path:models/marts/{name}.sql" for name in TARGETS]
    run = run_stage(
        [
            str(Path(sys.executable).parent / "dbt"),
            "compile",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target),
            "--log-path",
            str(logs),
            "--quiet",
            # The floor builds every model once from scratch: incremental models (the facts)
            # must compile to their full-build SQL, not to an increment on the built warehouse.
            "--full-refresh",
            "--select",
            *select,
        ],
        logs / "compile.out",
        env=env,
        cwd=DBT_PROJECT_DIR,
    )
    _check("dbt compile (for the floor)", run)
    return target / "manifest.json"


# The incremental run is what the daily schedule runs on a day's new files: the daily refresh
# job (orchestration/automation/jobs.py: every asset outside the ML groups, scoring with the
# current champions); retraining is the weekly job's, so it is not part of the daily cost.
# The daily job's selection as a `c360 run --select` string; a test (test_definitions.py) proves
# it selects exactly the daily_refresh_job's assets.
DAILY_SELECTION = "not (group:ml or key:features/* or key:ml/recommender or key:ml/cross_sell_rules)"


def _platform_run(
    label: str, home: Path, env: dict[str, str], logs: Path, selection: str | None = None
) -> dict:
    args = ("run", "--no-summary", *(("--select", selection) if selection else ()))
    run = _check(
        f"c360 run ({label})",
        run_stage(c360_stage(*args), logs / f"run_{label}.log", env=env),
    )
    steps = platform.run_steps(home / "dagster")
    dbt = platform.dbt_results(steps["run_id"], home / "dbt" / "runs")
    return {
        "wall_s": run.seconds,
        "peak_rss_gib": run.peak_rss_gib,
        "cpu_s": run.cpu_seconds,
        "load_avg": list(run.load_avg),
        **steps,
        "peak_rss_steps": step_peaks(steps["steps"], run.rss_samples),
        "stages_cpu_s": step_cpu(steps["steps"], run.cpu_samples),
        "dbt_models_s": round(sum(r["seconds"] for r in dbt if r["kind"] == "model"), 2),
        "dbt_tests_s": round(sum(r["seconds"] for r in dbt if r["kind"] in ("test", "unit_test")), 2),
        "slowest_models": platform.slowest(dbt, "model"),
        "_dbt": dbt,
    }


def _compaction_run(home: Path, env: dict[str, str], logs: Path) -> dict:
    """`c360 compact` on the home as the last run left it (after the daily run: what the weekly
    job finds), with the file's size before and after."""
    path = home / "warehouse.duckdb"
    before = path.stat().st_size
    run = _check("c360 compact", run_stage(c360_stage("compact"), logs / "compact.log", env=env))
    return {
        "wall_s": run.seconds,
        "cpu_s": run.cpu_seconds,
        "peak_rss_gib": run.peak_rss_gib,
        "mb_before": round(before / 1e6, 1),
        "mb_after": round(path.stat().st_size / 1e6, 1),
    }


def step_cpu(steps: list[dict], samples: list[tuple[float, float]]) -> dict[str, float]:
    """Each step's CPU-seconds (the run's process tree, sampled) written into its entry of
    ``steps`` as ``cpu_s``; returns them summed per stage. The run's steps follow one another (one
    process, the in-process executor), so a step's CPU is the tree's while it ran: its own, its
    DuckDB and dbt threads' and its children's."""
    stages: dict[str, float] = {}
    for step in steps:
        if "started_at" in step:
            cpu = cpu_between(samples, step["started_at"], step["ended_at"])
            step["cpu_s"] = None if cpu is None else round(cpu, 2)
            if cpu is not None:
                stages[step["stage"]] = stages.get(step["stage"], 0.0) + cpu
    return {stage: round(cpu, 2) for stage, cpu in stages.items()}


def step_peaks(steps: list[dict], samples: list[tuple[float, int]], top: int = 5) -> list[dict]:
    """Each step's peak RSS (the run's process tree, sampled while the step ran) written into its
    entry of ``steps`` as ``peak_rss_gib``; returns the ``top`` steps by it. The run's peak alone
    did not say which step holds the memory (at L: 9.67 GiB, not located)."""
    for step in steps:
        if "started_at" in step:
            peak = peak_between(samples, step["started_at"], step["ended_at"])
            step["peak_rss_gib"] = None if peak is None else round(peak / GIB, 3)
    ranked = sorted((s for s in steps if s.get("peak_rss_gib") is not None), key=lambda s: -s["peak_rss_gib"])
    return [{"step": s["step"], "peak_rss_gib": s["peak_rss_gib"]} for s in ranked[:top]]


def bench_scale(
    scale: str,
    root: Path,
    customers: int | None = None,
    landing: Path | None = None,
    seed: int = 11,
    end_date: str | None = None,
    incremental_days: int = 7,
    incremental: bool = True,
    peer: bool = True,
    peer_memory_cap_gib: float | None = None,
    compact: bool = True,
    log=print,
) -> dict:
    """Benchmark one scale under ``root/<scale>``; returns the scale's report."""
    customers = customers or SCALES[scale]
    base = root / scale
    if base.exists():
        shutil.rmtree(base)
    home, logs = base / "home", base / "logs"
    logs.mkdir(parents=True)
    env = scale_env(home)
    result: dict = {"scale": scale, "customers": customers, "seed": seed, "home": str(home)}
    load_samples: list[tuple[float, float, float]] = [os.getloadavg()]
    started = time.perf_counter()

    _check(
        "c360 keys init", run_stage(c360_stage("keys", "init", "--if-missing"), logs / "keys.log", env=env)
    )
    if landing is None:
        end_date = end_date or default_end_date()
        log(f"[{scale}] generating {customers:,} customers (seed {seed}, up to {end_date})")
        landing = base / "generated"
        gen = _check(
            "c360 generate",
            run_stage(
                c360_stage(
                    "generate",
                    "--customers",
                    str(customers),
                    "--seed",
                    str(seed),
                    "--end-date",
                    end_date,
                    "--out",
                    str(landing),
                    "--quiet",
                ),
                logs / "generate.log",
                env=env,
            ),
        )
        result["generate"] = {
            "seconds": gen.seconds,
            "peak_rss_gib": gen.peak_rss_gib,
            "reused": False,
            "end_date": end_date,
        }
    else:
        landing = landing.resolve()
        result["generate"] = {
            "seconds": generation_seconds(landing.parent / "gen.log"),
            "peak_rss_gib": None,
            "reused": str(landing),
        }
    result["landing_gib"] = round(_dir_bytes(landing) / GIB, 3)

    log(f"[{scale}] holding out the last {incremental_days} days for the incremental run")
    held = bench_landing.prepare_landing(
        landing, home / "landing", base / "held_out", incremental_days if incremental else 0
    )

    log(f"[{scale}] full platform run (c360 run)")
    full = _platform_run("full", home, env, logs)
    load_samples.append(os.getloadavg())
    warehouse = home / "warehouse.duckdb"
    result["warehouse_gib"] = round(warehouse.stat().st_size / GIB, 3)
    _save_partial(base, result, platform={k: v for k, v in full.items() if k != "_dbt"})
    result["platform_marts"] = platform.marts_summary(warehouse)

    log(f"[{scale}] floor: raw DuckDB SQL")
    manifest = compile_core_models(env, base / "dbt_target", logs / "dbt")
    floor_run = _check(
        "floor",
        run_stage(
            python_stage(
                "cli.bench.floor",
                "--landing",
                str(home / "landing"),
                "--warehouse",
                str(base / "floor" / "warehouse.duckdb"),
                "--manifest",
                str(manifest),
                "--platform-warehouse",
                str(warehouse),
                "--out",
                str(base / "floor.json"),
            ),
            logs / "floor.log",
            env=env,
        ),
    )
    floor = _read_json(base / "floor.json")
    floor.update(wall_s=floor_run.seconds, peak_rss_gib=floor_run.peak_rss_gib)
    # Read no more (its figures are in floor.json): 12 GiB at L, which the next stages need.
    shutil.rmtree(base / "floor", ignore_errors=True)
    load_samples.append(os.getloadavg())

    log(f"[{scale}] independent floor: plain DuckDB, own rules and union-find")
    independent_run = _check(
        "independent floor",
        run_stage(
            python_stage(
                "cli.bench.independent_floor",
                "--landing",
                str(home / "landing"),
                "--database",
                str(base / "independent_floor" / "independent.duckdb"),
                "--platform-warehouse",
                str(warehouse),
                "--out",
                str(base / "independent_floor.json"),
            ),
            logs / "independent_floor.log",
            env=env,
        ),
    )
    independent = _read_json(base / "independent_floor.json")
    independent.update(
        wall_s=independent_run.seconds,
        peak_rss_gib=independent_run.peak_rss_gib,
        process_cpu_s=independent_run.cpu_seconds,
    )
    shutil.rmtree(base / "independent_floor", ignore_errors=True)
    load_samples.append(os.getloadavg())

    core = set(floor["models"])
    platform_core_models_s = round(sum(r["seconds"] for r in full["_dbt"] if r["name"] in core), 2)
    platform_sql_s = round(full["stages"]["ingest"] + platform_core_models_s, 2)
    # What the independent floor is held against: the platform's whole data path (every dbt
    # model and test, and the quality gates), not only the models the floor replays.
    platform_pipeline_s = round(sum(full["stages"][stage] for stage in PIPELINE_STAGES), 2)
    platform_pipeline_cpu_s = pipeline_cpu(full)

    peer_result: dict = {"skipped": True}
    if peer:
        log(f"[{scale}] peer: pandas")
        cap = peer_memory_cap_gib or round(0.6 * _ram_gib(), 1)
        peer_run = run_stage(
            python_stage(
                "cli.bench.peer",
                "--landing",
                str(home / "landing"),
                "--out",
                str(base / "peer.json"),
                "--memory-cap-gib",
                str(cap),
            ),
            logs / "peer.log",
            env=env,
        )
        if peer_run.returncode == 0:
            peer_result = _read_json(base / "peer.json")
        else:
            reason = (
                "killed (out of memory?)"
                if peer_run.returncode in (-9, 137)
                else f"exit {peer_run.returncode}"
            )
            peer_result = {"error": f"pandas peer failed: {reason}; see {peer_run.log}"}
        peer_result.update(wall_s=peer_run.seconds, peak_rss_gib=peer_run.peak_rss_gib, memory_cap_gib=cap)
        load_samples.append(os.getloadavg())
    _save_partial(base, result, floor=floor, independent_floor=independent, peer=peer_result)

    inc: dict | None = None
    if incremental:
        log(
            f"[{scale}] incremental run: {held.rows_held_out:,} new rows ({held.share:.1%} of the landing bytes)"
        )
        bench_landing.release_held_out(base / "held_out", home / "landing")
        inc = _platform_run("incremental", home, env, logs, selection=DAILY_SELECTION)
        inc = {k: v for k, v in inc.items() if k != "_dbt"} | {
            "held_out": {
                "cutoff": held.cutoff,
                "rows": held.rows_held_out,
                "bytes_share": held.share,
                "files": held.files,
            }
        }
        load_samples.append(os.getloadavg())

    compaction = _compaction_run(home, env, logs) if compact else None
    if compaction:
        log(
            f"[{scale}] compaction: {compaction['mb_before']:,.1f} -> {compaction['mb_after']:,.1f} MB "
            f"in {compaction['wall_s']:.1f} s"
        )
        load_samples.append(os.getloadavg())

    result.update(
        platform={k: v for k, v in full.items() if k != "_dbt"},
        platform_core_models_s=platform_core_models_s,
        platform_sql_s=platform_sql_s,
        platform_pipeline_s=platform_pipeline_s,
        platform_pipeline_cpu_s=platform_pipeline_cpu_s,
        floor=floor,
        independent_floor=independent,
        peer=peer_result,
        incremental=inc,
        compaction=compaction,
        bench_seconds=round(time.perf_counter() - started, 1),
        load_avg_samples=[list(s) for s in load_samples],
    )
    result.update(headline(result))
    return result


def headline(r: dict) -> dict:
    """The figures the issue asks for, per scale."""
    full, floor, peer, inc = r["platform"], r["floor"], r["peer"], r["incremental"]
    peer_s = peer.get("total_s")
    return {
        "end_to_end_s": full["wall_s"],
        "end_to_end_with_generate_s": round(full["wall_s"] + (r["generate"]["seconds"] or 0), 1),
        "peak_rss_gib": max(full["peak_rss_gib"], inc["peak_rss_gib"] if inc else 0),
        "sql_vs_floor": round(r["platform_sql_s"] / floor["total_s"], 2) if floor.get("total_s") else None,
        "speedup_vs_pandas": round(peer_s / r["platform_sql_s"], 2)
        if peer_s and r["platform_sql_s"]
        else None,
        "incremental_share": round(inc["wall_s"] / full["wall_s"], 3) if inc else None,
        # The same share in CPU-seconds (whole commands, wait4): steadier than the wall clock on a
        # shared machine. Added 2026-12-06; older entries lack it.
        "incremental_share_cpu": round(inc["cpu_s"] / full["cpu_s"], 3)
        if inc and inc.get("cpu_s") and full.get("cpu_s")
        else None,
        **independent_headline(r),
        # The warehouse's compaction after the last run (c360 compact; weekly in production).
        # Added 2026-12-07; older entries lack them.
        "compaction_s": (r.get("compaction") or {}).get("wall_s"),
        "compaction_mb_reclaimed": round(r["compaction"]["mb_before"] - r["compaction"]["mb_after"], 1)
        if r.get("compaction")
        else None,
    }


def pipeline_cpu(run: dict) -> float | None:
    """CPU-seconds of a run's ingest, quality gates and dbt build (issue 18's stages); None for a
    run measured without CPU samples."""
    cpu = run.get("stages_cpu_s") or {}
    if not cpu:
        return None
    return round(sum(cpu.get(stage, 0.0) for stage in PIPELINE_STAGES), 2)


def independent_headline(r: dict) -> dict:
    """The independent floor's figures: its seconds, the platform's ingest + gates + dbt seconds
    over them, and whether its customer_360 columns equalled the platform's."""
    ind = r.get("independent_floor") or {}
    seconds = ind.get("total_s")
    comparison = ind.get("comparison") or {}
    return {
        "independent_floor_s": seconds,
        "sql_vs_independent_floor": round(r["platform_pipeline_s"] / seconds, 2)
        if seconds and r.get("platform_pipeline_s")
        else None,
        "independent_floor_matched": comparison.get("matched"),
        "independent_floor_mismatches": {k: v["rows"] for k, v in comparison.get("mismatches", {}).items()},
        # Since 2026-12-06 the floor builds customer_360's behaviour, RFM and last-seen columns
        # too (45 columns); its part that builds the 29 columns of before, for comparison with
        # earlier benches. Older entries lack these.
        "independent_floor_core_s": ind.get("core_s"),
        "sql_vs_independent_floor_core": round(r["platform_pipeline_s"] / ind["core_s"], 2)
        if ind.get("core_s") and r.get("platform_pipeline_s")
        else None,
        # The same ratio in CPU-seconds: the platform's stages (sampled) over the floor's build
        # (its own process CPU while it built, the comparison left out). Added 2026-12-06.
        "platform_pipeline_cpu_s": r.get("platform_pipeline_cpu_s"),
        "independent_floor_cpu_s": ind.get("cpu_s"),
        "sql_vs_independent_floor_cpu": round(r["platform_pipeline_cpu_s"] / ind["cpu_s"], 2)
        if ind.get("cpu_s") and r.get("platform_pipeline_cpu_s")
        else None,
    }


def _save_partial(base: Path, result: dict, **stages) -> None:
    """What is measured so far, so that an interrupted bench (a long incremental run) still
    leaves its figures behind in ``<root>/<scale>/partial.json``."""
    import json

    path = base / "partial.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps(saved | result | stages, indent=2, default=str))


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def _ram_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
