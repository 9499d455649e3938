"""Pairwise precision and recall of identity resolution against ground truth.

Two records form a true pair when the truth gives them the same person, a predicted pair when
``marts.identity_map`` gives them the same customer_id. Records the truth assigns to no person
(anonymous devices, walk-in receipts) and records that never reached the map (quarantined) are
left out; their counts are reported.
"""

from __future__ import annotations

from pathlib import Path

import click
import duckdb


def pairwise_scores(con: duckdb.DuckDBPyConnection, truth_csv: Path) -> dict:
    con.execute(
        f"""
        create or replace temp table _truth as
        select source, source_record_id, nullif(person_id, '') as person_id
        from read_csv('{truth_csv}', header = true, all_varchar = true)
        """
    )
    con.execute(
        """
        create or replace temp table _evaluated as
        select t.source, t.source_record_id, t.person_id, m.customer_id
        from _truth t join marts.identity_map m using (source, source_record_id)
        where t.person_id is not null
        """
    )
    pairs = con.execute(
        """
        with cells as (select person_id, customer_id, count(*) as n from _evaluated group by all),
        persons as (select person_id, count(*) as n from _evaluated group by all),
        customers as (select customer_id, count(*) as n from _evaluated group by all)
        select
            (select coalesce(sum(n * (n - 1) / 2), 0) from cells) as true_positive_pairs,
            (select coalesce(sum(n * (n - 1) / 2), 0) from customers) as predicted_pairs,
            (select coalesce(sum(n * (n - 1) / 2), 0) from persons) as true_pairs
        """
    ).fetchall()[0]
    tp, predicted, true = (int(x) for x in pairs)
    by_source = con.execute(
        """
        select t.source,
               count(*) as truth_records,
               count(*) filter (where t.person_id is null) as anonymous,
               count(m.customer_id) filter (where t.person_id is not null) as evaluated,
               count(*) filter (where t.person_id is not null and m.customer_id is null) as not_in_map
        from _truth t left join marts.identity_map m using (source, source_record_id)
        group by 1 order by 1
        """
    ).fetchall()
    persons, customers = con.execute(
        "select count(distinct person_id), count(distinct customer_id) from _evaluated"
    ).fetchall()[0]
    return {
        "precision": tp / predicted if predicted else 1.0,
        "recall": tp / true if true else 1.0,
        "true_positive_pairs": tp,
        "predicted_pairs": predicted,
        "true_pairs": true,
        "persons": persons,
        "customers": customers,
        "by_source": [
            dict(zip(("source", "truth_records", "anonymous", "evaluated", "not_in_map"), row))
            for row in by_source
        ],
    }


def olist_recovery(home: Path, src: Path) -> dict:
    """Build the Olist sample through the same pipeline in its own C360_HOME and measure how
    well identity resolution recovers Olist's customer_unique_id (the truth the mapping wrote)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, C360_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    env.pop("C360_WAREHOUSE", None)
    c360 = [sys.executable, "-m", "cli.main"]

    def step(*args: str) -> None:
        done = subprocess.run([*c360, *args], env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            # Say which step of the Olist build failed and why (its own last lines), not just an exit code.
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"Olist recovery: `c360 {' '.join(args)}` failed (C360_HOME={home}):\n{tail}")

    step("keys", "init", "--if-missing")
    step("ingest", "--mapping", "olist", "--src", str(src))
    step("run", "--select", "+key:marts/identity_map and not group:ingest", "--no-summary")
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return pairwise_scores(con, home / "landing" / "_truth" / "identity.csv")
    finally:
        con.close()


def _print(console, title: str, scores: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("metric", "value"):
        table.add_column(col)
    for key in ("precision", "recall", "persons", "customers", "true_pairs", "predicted_pairs"):
        value = scores[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else f"{value:,}")
    console.print(table)


@click.command(
    "identity",
    help="Pairwise precision/recall of identity resolution against _truth/identity.csv "
    "(targets: precision >= 0.995, recall >= 0.98), and the Olist customer_unique_id recovery.",
)
@click.option("--olist/--no-olist", default=True, help="Also build the Olist sample and measure recovery.")
@click.option("--olist-src", type=click.Path(path_type=Path), default=None)
def eval_identity_command(olist: bool, olist_src: Path | None) -> None:
    from rich.console import Console

    from c360.settings import PROJECT_ROOT, get_settings
    from cli.evals import write_report

    console = Console()
    settings = get_settings()
    truth = settings.truth / "identity.csv"
    if not truth.exists():
        raise click.ClickException(f"no ground truth at {truth}: run `c360 generate` (make demo) first")
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        demo = pairwise_scores(con, truth)
    finally:
        con.close()
    demo["meets_target"] = demo["precision"] >= 0.995 and demo["recall"] >= 0.98
    _print(console, "Identity resolution on generated data", demo)
    payload = {"generated": demo, "precision": demo["precision"], "recall": demo["recall"]}
    src = olist_src or PROJECT_ROOT.parent / "shared" / "data" / "olist_sample"
    if olist and src.is_dir():
        recovery = olist_recovery(settings.home / "olist", src)
        _print(console, "Olist: recovery of customer_unique_id", recovery)
        payload["olist"] = recovery
    elif olist:
        console.print(f"Olist sample not found at {src}: skipped")
    console.print(f"written {write_report('identity', payload)}")
