"""The benchmark report: a table on the terminal, ``bench.json`` and ``bench.md``, and the
committed per-scale summary ``benchmarks/results.json``."""

from __future__ import annotations

import json
import os
import platform as host
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from c360.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, PROJECT_ROOT
from cli.bench.measure import GIB
from orchestration.dbt import scheduling as dbt_scheduling

HEADLINE = ("end_to_end_s", "peak_rss_gib", "sql_vs_floor", "speedup_vs_pandas", "incremental_share")
TARGETS_AT_L = {
    "end_to_end_s": ("<=", 900),
    "peak_rss_gib": ("<=", 8),
    "sql_vs_floor": ("<=", 1.5),
    "speedup_vs_pandas": (">=", 5),
    "incremental_share": ("<=", 0.10),
}


def machine() -> dict:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            or None
        )
    except OSError:
        commit = None
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(ram, 1),
        "python": host.python_version(),
        "platform": host.platform(),
        "duckdb_threads": os.environ.get("C360_DUCKDB_THREADS") or "2 (dbt profile default)",
        "duckdb_memory_limit": os.environ.get("C360_DUCKDB_MEMORY_LIMIT")
        or f"{DEFAULT_DUCKDB_MEMORY_LIMIT} (default)",
        "dbt_memory_limit": os.environ.get("C360_DBT_MEMORY_LIMIT")
        or os.environ.get("C360_DUCKDB_MEMORY_LIMIT")
        or "6GB (dbt profile default)",
        # The two switches that change how dbt runs its nodes, so that runs with either setting can
        # be told apart in results.json (docs/ORCHESTRATION.md).
        "dbt_in_process": os.environ.get("C360_DBT_IN_PROCESS", "1") != "0",
        "dbt_longest_chain_first": dbt_scheduling.requested(os.environ),
        # The switch as set: "auto" (the default since 2026-12-07, thirtieth session: the longest
        # chain first on a first build, dbt's order on increments), "1" or "0".
        "dbt_order": dbt_scheduling.setting(os.environ),
        "git_commit": commit,
    }


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}"
    return f"{value}{unit}"


def stage_rows(r: dict) -> list[tuple[str, object, object]]:
    """(stage, seconds, note) rows of one scale, in pipeline order."""
    full, floor, peer, inc = r["platform"], r["floor"], r["peer"], r["incremental"]
    gen = r["generate"]
    rows = [("generate", gen["seconds"], "reused " + gen["reused"] if gen["reused"] else "c360 generate")]
    rows.append(("ingest (Dagster steps)", full["stages"]["ingest"], "load + pseudonymise + quarantine"))
    rows.append(
        (
            "dbt build (Dagster steps)",
            full["stages"]["dbt build"],
            f"models {full['dbt_models_s']} s + tests {full['dbt_tests_s']} s (dbt's own times, 2 threads)",
        )
    )
    for m in full["slowest_models"][:5]:
        rows.append((f"  model {m['name']}", m["seconds"], "dbt execution_time"))
    rows.append(
        ("quality gates (asset checks)", full["stages"]["quality gates"], "GX suites + conservation checks")
    )
    ml = [s for s in full["steps"] if s["stage"] == "ml"]
    rows.append(("ml (training + scoring)", full["stages"]["ml"], f"{len(ml)} steps"))
    for s in ml:
        rows.append((f"  {s['step']}", s["seconds"], ""))
    rows.append(("other steps", full["stages"]["other"], "segments, activation, freshness"))
    peaks = full.get("peak_rss_steps") or []
    where = f" ({peaks[0]['step']} {peaks[0]['peak_rss_gib']} GiB at most)" if peaks else ""
    cpu = f", {full['cpu_s']:,.0f} CPU-s" if full.get("cpu_s") else ""
    rows.append(("end to end (c360 run)", full["wall_s"], f"peak RSS {full['peak_rss_gib']} GiB{where}{cpu}"))
    rows.append(("platform SQL stages", r["platform_sql_s"], "ingest + dbt models upstream of the marts"))
    rows.append(
        (
            "floor (raw DuckDB SQL)",
            floor["total_s"],
            f"ingest {floor['ingest_s']} s + models {floor['models_s']} s, peak RSS {floor['peak_rss_gib']} GiB",
        )
    )
    ind = r.get("independent_floor")
    if ind:
        cmp = ind.get("comparison") or {}
        verdict = (
            "customer_360 columns equal the platform's"
            if cmp.get("matched")
            else f"DIFFERS from the platform: {', '.join(cmp.get('mismatches', {})) or 'customer pairing'}"
        )
        rows.append(
            (
                "independent floor (own DuckDB SQL)",
                ind["total_s"],
                f"ingest {ind['ingest_s']} s, identity {ind['identity_s']} s, marts {ind['marts_s']} s"
                + (f", behaviour {ind['behaviour_s']} s" if "behaviour_s" in ind else "")
                + (f", {ind['cpu_s']:,.0f} CPU-s" if ind.get("cpu_s") else "")
                + f"; {verdict}",
            )
        )
        rows.append(
            (
                "platform ingest + gates + dbt",
                r["platform_pipeline_s"],
                f"{r['sql_vs_independent_floor']}x the independent floor"
                + (
                    f"; {r['platform_pipeline_cpu_s']:,.0f} CPU-s, {r['sql_vs_independent_floor_cpu']}x its CPU-s"
                    if r.get("sql_vs_independent_floor_cpu")
                    else ""
                ),
            )
        )
    if peer.get("total_s") is not None:
        rows.append(
            (
                "peer (pandas)",
                peer["total_s"],
                f"ingest {peer['ingest_s']} s, identity {peer['identity_s']} s, peak RSS {peer['peak_rss_gib']} GiB",
            )
        )
    else:
        rows.append(("peer (pandas)", None, peer.get("error") or "skipped"))
    if not inc:
        rows.append(("incremental run", None, "not run (--no-incremental)"))
    else:
        rows.append(
            (
                "incremental run",
                inc["wall_s"],
                (
                    f"{inc['held_out']['rows']:,} new rows ({inc['held_out']['bytes_share']:.1%} of bytes), "
                    f"ingest {inc['stages']['ingest']} s, dbt {inc['stages']['dbt build']} s"
                    + (
                        f"; {inc['cpu_s']:,.0f} CPU-s, {r['incremental_share_cpu']} of the full build's"
                        if r.get("incremental_share_cpu")
                        else ""
                    )
                ),
            )
        )
    comp = r.get("compaction")
    if comp:
        rows.append(
            (
                "compaction",
                comp["wall_s"],
                f"warehouse {comp['mb_before']:,.1f} -> {comp['mb_after']:,.1f} MB, peak RSS {comp['peak_rss_gib']} GiB",
            )
        )
    return rows


def print_report(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    for r in report["scales"].values():
        table = Table(
            title=f"Scale {r['scale']}: {r['customers']:,} customers, warehouse {r['warehouse_gib']} GiB"
        )
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        table.add_column("note")
        for stage, seconds, note in stage_rows(r):
            table.add_row(stage, _fmt(seconds), note)
        console.print(table)
    summary = Table(title="Headline (targets are for L)")
    summary.add_column("scale")
    for key in HEADLINE:
        summary.add_column(key, justify="right")
    for r in report["scales"].values():
        summary.add_row(r["scale"], *(_fmt(r[k]) for k in HEADLINE))
    summary.add_row("target at L", *(f"{op} {v}" for op, v in TARGETS_AT_L.values()))
    console.print(summary)


def markdown(report: dict) -> str:
    m = report["machine"]
    # Reports written before these keys existed do not say: dbt ran in process from 2026-12-03, and
    # took the longest chain first from 36fe309 to this commit's parent.
    dbt_process = "in the run's process" if m.get("dbt_in_process", True) else "as a subprocess per step"
    dbt_order = {
        "auto": "longest chain first on the full build, in dbt's order on the daily run",
        "1": "longest chain first",
        "0": "in dbt's order",
    }[m.get("dbt_order") or ("1" if m.get("dbt_longest_chain_first", False) else "0")]
    lines = [
        "# Benchmark run",
        "",
        f"Command: `{report['command']}`  ",
        f"Started {report['started_at']}, {report['seconds']} s.  ",
        (
            f"Machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, DuckDB threads {m['duckdb_threads']}, "
            f"memory limit {m['duckdb_memory_limit']} (dbt {m.get('dbt_memory_limit', '8GB')}), commit {m['git_commit']}.  "
        ),
        f"dbt {dbt_process}, its ready nodes {dbt_order}.  ",
        f"Load average (1, 5, 15 min) sampled between stages: {report['load_avg_samples']}",
        "",
        "| scale | " + " | ".join(HEADLINE) + " |",
        "|---|" + "---:|" * len(HEADLINE),
    ]
    for r in report["scales"].values():
        lines.append(f"| {r['scale']} | " + " | ".join(_fmt(r[k]) for k in HEADLINE) + " |")
    for r in report["scales"].values():
        lines += [
            "",
            f"## {r['scale']}: {r['customers']:,} customers",
            "",
            f"Warehouse {r['warehouse_gib']} GiB, landing {r['landing_gib']} GiB.",
            "",
            "| stage | seconds | note |",
            "|---|---:|---|",
        ]
        lines += [f"| {s} | {_fmt(sec)} | {note} |" for s, sec, note in stage_rows(r)]
        lines += [
            "",
            "Marts compared (customers, revenue):",
            "",
            f"- platform: {r['platform_marts']['customers']:,}, {r['platform_marts']['revenue']:,.2f}",
            f"- floor: {r['floor']['marts']['customers']:,}, {r['floor']['marts']['revenue']:,.2f}",
        ]
        if cmp := (r.get("independent_floor") or {}).get("comparison"):
            lines.append(
                f"- independent floor: {cmp['customers']:,} customers; "
                + ("every compared column equal" if cmp["matched"] else f"mismatches {cmp['mismatches']}")
            )
        if r["peer"].get("marts"):
            lines.append(
                f"- pandas peer: {r['peer']['marts']['customers']:,}, {r['peer']['marts']['revenue']:,.2f}"
            )
    return "\n".join(lines) + "\n"


def write_report(report: dict, reports_dir: Path) -> tuple[Path, Path]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    js, md = reports_dir / "bench.json", reports_dir / "bench.md"
    js.write_text(json.dumps(report, indent=2, default=str))
    md.write_text(markdown(report))
    return js, md


def update_results(report: dict, path: Path) -> Path:
    """Merge this run's scales into the committed results file (other scales are kept)."""
    current = json.loads(path.read_text()) if path.exists() else {}
    scales = current.get("scales", {})
    for name, r in report["scales"].items():
        scales[name] = {k: r[k] for k in HEADLINE} | {
            "customers": r["customers"],
            "end_to_end_with_generate_s": r["end_to_end_with_generate_s"],
            "generate_s": r["generate"]["seconds"],
            "platform_sql_s": r["platform_sql_s"],
            "floor_s": r["floor"]["total_s"],
            # Added with the independent floor (issue 18); older entries lack them.
            "independent_floor_s": r.get("independent_floor_s"),
            "sql_vs_independent_floor": r.get("sql_vs_independent_floor"),
            "independent_floor_matched": r.get("independent_floor_matched"),
            "independent_floor_mismatches": r.get("independent_floor_mismatches"),
            "independent_floor_columns": (r.get("independent_floor") or {}).get("columns"),
            "independent_floor_core_s": r.get("independent_floor_core_s"),
            "sql_vs_independent_floor_core": r.get("sql_vs_independent_floor_core"),
            "platform_pipeline_s": r.get("platform_pipeline_s"),
            "pandas_s": r["peer"].get("total_s"),
            "pandas_error": r["peer"].get("error"),
            "incremental_s": (r["incremental"] or {}).get("wall_s"),
            "incremental_rows": (r["incremental"] or {}).get("held_out", {}).get("rows"),
            "warehouse_gib": r["warehouse_gib"],
            "stages_s": r["platform"]["stages"],
            "slowest_models": [(m["name"], m["seconds"]) for m in r["platform"]["slowest_models"][:5]],
            # Added 2026-12-04 (issues 19, 20): per-model steps, the daily run's stages and
            # which steps held the most memory; older entries lack them.
            "ml_steps_s": {s["step"]: s["seconds"] for s in r["platform"]["steps"] if s["stage"] == "ml"},
            "peak_rss_steps": r["platform"].get("peak_rss_steps"),
            "incremental_stages_s": (r["incremental"] or {}).get("stages"),
            "incremental_peak_rss_steps": (r["incremental"] or {}).get("peak_rss_steps"),
            # Added 2026-12-06: CPU-seconds beside the wall clock (cli/bench/measure.py); older
            # entries lack them.
            "end_to_end_cpu_s": r["platform"].get("cpu_s"),
            "stages_cpu_s": r["platform"].get("stages_cpu_s"),
            "platform_pipeline_cpu_s": r.get("platform_pipeline_cpu_s"),
            "independent_floor_cpu_s": r.get("independent_floor_cpu_s"),
            "sql_vs_independent_floor_cpu": r.get("sql_vs_independent_floor_cpu"),
            "incremental_cpu_s": (r["incremental"] or {}).get("cpu_s"),
            "incremental_stages_cpu_s": (r["incremental"] or {}).get("stages_cpu_s"),
            "incremental_share_cpu": r.get("incremental_share_cpu"),
            # Added 2026-12-07: `c360 compact` after the last run; older entries lack them.
            "compaction_s": r.get("compaction_s"),
            "compaction_mb_reclaimed": r.get("compaction_mb_reclaimed"),
            "compaction": r.get("compaction"),
            "load_avg_samples": r["load_avg_samples"],
            "measured_at": report["started_at"],
            "machine": report["machine"],
            "command": report["command"],
        }
    current["scales"] = dict(sorted(scales.items(), key=lambda kv: ("SML".find(kv[0]) % 4, kv[0])))
    current["targets_at_L"] = {k: f"{op} {v}" for k, (op, v) in TARGETS_AT_L.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n")
    return path


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
