"""How well ingestion's quarantine catches the defects the generator planted, and whether rows
are conserved.

A quarantined record is matched to a planted defect on (source, file, record_id). Order lines
quarantined only because their order was (``orphan_order``, or ``duplicate`` with a re-submitted
order) carry no defect of their own: they count as correct when their order is a planted
defect, and are reported as ``cascaded``.
"""

from __future__ import annotations

from pathlib import Path

import click
import duckdb

from c360.contracts import SOURCES


def quality_scores(con: duckdb.DuckDBPyConnection, truth_dir: Path) -> dict:
    truth_csv = Path(truth_dir) / "defects.csv"
    con.execute(
        f"""
        create or replace temp table _planted as
        select source, file, record_id, defect_type
        from read_csv('{truth_csv}', header = true, all_varchar = true)
        """
    )
    con.execute(
        """
        create or replace temp table _caught as
        select q.source, q.source_file as file, q.record_id, q.rule,
               p.defect_type,
               -- a line pulled out with its order (order_item_id = <order_id>-<line_no>): justified when
               -- that order was planted bad
               q.source = 'ecommerce_order_items' and q.rule in ('orphan_order', 'duplicate')
                   and p.defect_type is null
                   and exists (select 1 from _planted o where o.source = 'ecommerce_orders'
                               and o.record_id = regexp_replace(q.record_id, '-[0-9]+$', '')) as cascaded
        from quality.quarantine q
        left join _planted p on p.source = q.source and p.file = q.source_file and p.record_id = q.record_id
        """
    )
    per_source = con.execute(
        """
        with planted as (
            select p.source, count(*) as planted,
                   count(*) filter (where exists (select 1 from _caught c where c.source = p.source
                                    and c.file = p.file and c.record_id = p.record_id)) as found
            from _planted p group by 1
        ),
        caught as (
            select source, count(*) as quarantined,
                   count(*) filter (where defect_type is not null) as matched,
                   count(*) filter (where cascaded) as cascaded,
                   count(*) filter (where defect_type is not null and rule = defect_type) as same_rule
            from _caught group by 1
        )
        select coalesce(p.source, c.source) as source, coalesce(planted, 0), coalesce(found, 0),
               coalesce(quarantined, 0), coalesce(matched, 0), coalesce(cascaded, 0), coalesce(same_rule, 0)
        from planted p full join caught c using (source) order by 1
        """
    ).fetchall()
    conservation = {
        row[0]: row[1:]
        for row in con.execute(
            """
            select source, count(*) filter (where rows_in <> rows_loaded + rows_quarantined),
                   sum(rows_in), sum(rows_loaded), sum(rows_quarantined)
            from raw._load_log group by 1
            """
        ).fetchall()
    }
    in_quarantine = dict(con.execute("select source, count(*) from quality.quarantine group by 1").fetchall())
    by_source = {}
    sources = sorted(set(SOURCES) | {r[0] for r in per_source})
    rows = {r[0]: r[1:] for r in per_source}
    for source in sources:
        planted, found, quarantined, matched, cascaded, same_rule = rows.get(source, (0,) * 6)
        bad_files, rows_in, loaded, quarantined_logged = conservation.get(source, (0, 0, 0, 0))
        in_raw = con.execute(f"select count(*) from raw.{source}").fetchone()[0] if source in SOURCES else 0
        conserved = (
            bad_files == 0
            and int(loaded or 0) == in_raw
            and int(quarantined_logged or 0) == in_quarantine.get(source, 0)
        )
        by_source[source] = {
            "planted": planted,
            "found": found,
            "quarantined": quarantined,
            "matched": matched,
            "cascaded": cascaded,
            "unexplained": quarantined - matched - cascaded,
            "rule_agrees": same_rule,
            "precision": (matched + cascaded) / quarantined if quarantined else 1.0,
            "recall": found / planted if planted else 1.0,
            "rows_in": int(rows_in or 0),
            "rows_loaded": int(loaded or 0),
            "rows_quarantined": int(quarantined_logged or 0),
            "rows_in_raw": int(in_raw),
            "conserved": conserved,
        }
    mismatches = con.execute(
        """
        select 'missed' as kind, source, file, record_id, defect_type as expected, null as rule from _planted p
        where not exists (select 1 from _caught c where c.source = p.source and c.file = p.file and c.record_id = p.record_id)
        union all
        select 'unexplained', source, file, record_id, null, rule from _caught where defect_type is null and not cascaded
        union all
        select 'other_rule', source, file, record_id, defect_type, rule from _caught where defect_type is not null and rule <> defect_type
        order by 1, 2, 3, 4 limit 200
        """
    ).fetchall()
    totals = {
        k: sum(s[k] for s in by_source.values())
        for k in ("planted", "found", "quarantined", "matched", "cascaded", "rule_agrees")
    }
    return {
        "precision": (totals["matched"] + totals["cascaded"]) / totals["quarantined"]
        if totals["quarantined"]
        else 1.0,
        "recall": totals["found"] / totals["planted"] if totals["planted"] else 1.0,
        "rule_agreement": totals["rule_agrees"] / totals["matched"] if totals["matched"] else 1.0,
        "conserved": all(s["conserved"] for s in by_source.values()),
        **totals,
        "by_source": by_source,
        "mismatches": [
            dict(zip(("kind", "source", "file", "record_id", "defect_type", "rule"), m)) for m in mismatches
        ],
    }


@click.command(
    "quality", help="Precision/recall of quarantine vs planted defects, and row conservation per source."
)
def eval_quality_command() -> None:
    from rich.console import Console
    from rich.table import Table

    from c360.settings import get_settings
    from c360.warehouse import connect
    from cli.evals import write_report

    settings = get_settings()
    con = connect(settings.warehouse, read_only=True)
    try:
        scores = quality_scores(con, settings.truth)
    finally:
        con.close()
    table = Table(title="Quarantine vs planted defects, and row conservation")
    for col in (
        "source",
        "planted",
        "found",
        "quarantined",
        "cascaded",
        "precision",
        "recall",
        "rule agrees",
        "conserved",
    ):
        table.add_column(col, justify="left" if col == "source" else "right")
    for source, s in scores["by_source"].items():
        table.add_row(
            source,
            f"{s['planted']:,}",
            f"{s['found']:,}",
            f"{s['quarantined']:,}",
            f"{s['cascaded']:,}",
            f"{s['precision']:.3f}",
            f"{s['recall']:.3f}",
            f"{s['rule_agrees']:,}/{s['matched']:,}",
            "yes" if s["conserved"] else "[red]NO[/red]",
        )
    table.add_row(
        "all",
        f"{scores['planted']:,}",
        f"{scores['found']:,}",
        f"{scores['quarantined']:,}",
        f"{scores['cascaded']:,}",
        f"{scores['precision']:.3f}",
        f"{scores['recall']:.3f}",
        f"{scores['rule_agrees']:,}/{scores['matched']:,}",
        "yes" if scores["conserved"] else "[red]NO[/red]",
    )
    console = Console()
    console.print(table)
    for m in scores["mismatches"][:20]:
        console.print(
            f"  {m['kind']}: {m['source']} {m['file']} {m['record_id']} planted={m['defect_type']} rule={m['rule']}"
        )
    path = write_report("quality", scores)
    console.print(f"Wrote {path}")
