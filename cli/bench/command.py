"""The ``c360 bench`` command."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import click


@click.command("bench")
@click.option(
    "--scale",
    "scales",
    multiple=True,
    type=click.Choice(["S", "M", "L"]),
    help="S = 10k customers, M = 100k, L = 1M. Repeat for several; default S.",
)
@click.option(
    "--customers",
    type=int,
    default=None,
    help="A custom scale of this many customers instead of --scale (for quick checks).",
)
@click.option(
    "--landing",
    type=click.Path(file_okay=False, path_type=Path, exists=True),
    default=None,
    help="Reuse an already generated landing folder (one scale only); its generation time is read "
    "from gen.log next to it if present.",
)
@click.option("--seed", type=int, default=11, show_default=True, help="Generator seed.")
@click.option(
    "--end-date",
    default=None,
    help="Last generated day (YYYY-MM-DD). Default: the generator's default, so runs are repeatable.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Bench root; each scale gets a fresh C360_HOME under <root>/<scale>/home. "
    "Default: $C360_HOME/bench.",
)
@click.option(
    "--incremental-days",
    type=int,
    default=7,
    show_default=True,
    help="Days held out of the full build and delivered afterwards as the incremental run.",
)
@click.option(
    "--incremental/--no-incremental",
    default=True,
    show_default=True,
    help="Time the incremental run (a second `c360 run`).",
)
@click.option("--peer/--no-peer", default=True, show_default=True, help="Time the pandas peer.")
@click.option(
    "--compaction/--no-compaction",
    default=True,
    show_default=True,
    help="Time `c360 compact` on the warehouse the last run left (the weekly maintenance job).",
)
@click.option(
    "--peer-memory-cap-gib",
    type=float,
    default=None,
    help="Address-space cap of the pandas peer (default 60% of RAM); beyond it pandas reports out of memory.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also merge the headline figures into this file (e.g. benchmarks/results.json).",
)
def bench_command(
    scales: tuple[str, ...],
    customers: int | None,
    landing: Path | None,
    seed: int,
    end_date: str | None,
    root: Path | None,
    incremental_days: int,
    incremental: bool,
    peer: bool,
    compaction: bool,
    peer_memory_cap_gib: float | None,
    results: Path | None,
) -> None:
    """Time every stage of the platform at a scale, against a DuckDB floor and a pandas peer.

    Prints a table and writes $C360_HOME/reports/bench.json and bench.md."""
    from c360.settings import get_settings
    from cli.bench import report as rep
    from cli.bench.core import SCALES, BenchError, bench_scale, check_free_disk

    if customers is not None and scales:
        raise click.UsageError("give --scale or --customers, not both")
    plan = {str(customers): customers} if customers else {s: SCALES[s] for s in (scales or ("S",))}
    if landing is not None and len(plan) > 1:
        raise click.UsageError("--landing reuses one landing folder: give exactly one --scale")
    settings = get_settings()
    root = (root or settings.home / "bench").resolve()
    try:
        check_free_disk(root, plan, landing_reused=landing is not None)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    report: dict = {
        "command": "c360 bench " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]),
        "started_at": rep.now_iso(),
        "machine": rep.machine(),
        "scales": {},
        "load_avg_samples": [list(os.getloadavg())],
    }
    started = time.perf_counter()
    try:
        for name, n in plan.items():
            report["scales"][name] = bench_scale(
                name,
                root,
                customers=n,
                landing=landing,
                seed=seed,
                end_date=end_date,
                incremental_days=incremental_days,
                incremental=incremental,
                peer=peer,
                peer_memory_cap_gib=peer_memory_cap_gib,
                compact=compaction,
                log=click.echo,
            )
            report["load_avg_samples"].append(list(os.getloadavg()))
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        report["seconds"] = round(time.perf_counter() - started, 1)
        if report["scales"]:
            js, md = rep.write_report(report, settings.reports)
            click.echo(f"wrote {js} and {md}")
            if results:
                click.echo(f"updated {rep.update_results(report, results)}")
    rep.print_report(report)
