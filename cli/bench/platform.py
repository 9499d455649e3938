"""What one platform run cost, read back from C360_HOME's Dagster instance and dbt's results.

``c360 run`` records every step in the Dagster event log of ``$C360_HOME/dagster``; the dbt
steps leave ``run_results.json`` (per-model execution time) in a target folder named after
the run. Nothing here re-implements the pipeline: it only reads what the run recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

STAGES = ("ingest", "dbt build", "quality gates", "ml", "other")


def step_stage(step_key: str, checks_only: bool) -> str:
    if step_key.startswith("ingest_"):
        return "ingest"
    if step_key.startswith("dbt_models"):
        return "dbt build"
    if checks_only:
        return "quality gates"
    if step_key.startswith(("ml__", "recommendations__")):
        return "ml"
    return "other"


def run_steps(dagster_home: Path, run_id: str | None = None) -> dict:
    """Per-step seconds and stage totals of a run (the latest one by default)."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        if run_id is None:
            runs = instance.get_runs(limit=1)
            if not runs:
                raise ValueError(f"no Dagster run recorded in {dagster_home}")
            run_id = runs[0].run_id
        run = instance.get_run_by_id(run_id)
        materializing, checking = set(), set()
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or not record.step_key:
                continue
            if event.is_step_materialization:
                materializing.add(record.step_key)
            elif event.event_type_value == "ASSET_CHECK_EVALUATION":
                checking.add(record.step_key)
        steps = []
        for stat in instance.get_run_step_stats(run_id):
            if stat.start_time is None or stat.end_time is None:
                continue
            checks_only = stat.step_key in checking and stat.step_key not in materializing
            steps.append(
                {
                    "step": stat.step_key,
                    "stage": step_stage(stat.step_key, checks_only),
                    "seconds": round(stat.end_time - stat.start_time, 2),
                    "status": stat.status.value if stat.status else None,
                    "started_at": round(stat.start_time, 2),
                    "ended_at": round(stat.end_time, 2),
                }
            )
        stats = instance.get_run_stats(run_id)
        begun = stats.launch_time or stats.start_time
        wall = (stats.end_time - begun) if stats.end_time and begun else None
    finally:
        instance.dispose()
    stages = {stage: round(sum(s["seconds"] for s in steps if s["stage"] == stage), 2) for stage in STAGES}
    return {
        "run_id": run_id,
        "status": run.status.value if run else None,
        "run_seconds": round(wall, 2) if wall else None,
        "stages": stages,
        "steps": sorted(steps, key=lambda s: -s["seconds"]),
    }


def dbt_results(run_id: str, target_root: Path) -> list[dict]:
    """dbt's per-node results of every dbt step of a Dagster run (each step's target folder, under
    ``$C360_HOME/dbt/runs``, is named ``<op>-<run id[:8]>-<pid>``)."""
    out: list[dict] = []
    for results in sorted(target_root.glob(f"dbt_models*-{run_id[:7]}*/run_results.json")):
        for r in json.loads(results.read_text()).get("results", []):
            out.append(
                {
                    "node": r["unique_id"],
                    "kind": r["unique_id"].split(".")[0],
                    "name": r["unique_id"].split(".")[-1],
                    "seconds": round(r.get("execution_time") or 0.0, 3),
                    "status": r.get("status"),
                }
            )
    return out


def slowest(results: list[dict], kind: str = "model", top: int = 10) -> list[dict]:
    return sorted((r for r in results if r["kind"] == kind), key=lambda r: -r["seconds"])[:top]


def marts_summary(warehouse: Path) -> dict:
    from c360.warehouse import connect
    from cli.bench.floor import marts_summary as summarise

    con = connect(warehouse, read_only=True)
    try:
        return summarise(con)
    finally:
        con.close()
