"""The floor: the platform's core transformations as plain DuckDB SQL in one process.

No Dagster, no dbt, no Great Expectations: landing CSVs are read with ``read_csv`` into the
platform's own ``raw.<source>`` tables (same columns, the loader's own row rules and
pseudonymisation SQL), then dbt's compiled SQL of every model upstream of ``customer_360``,
``customer_rfm`` and ``identity_map`` runs as ``create view / table ... as`` in dependency
order on one connection. What is left out, and why it is the floor rather than the platform:
per-file checksums and load log, quarantine rows, rejected-line capture, AES encryption of
sensitive columns (done in Python by the platform, not needed by the marts), erasure
suppression (a fresh bench warehouse has none), dbt tests and the quality gates.

Run as ``python -m cli.bench.floor`` (the bench runs it in a child process to measure its
memory); writes its timings and a summary of the marts as JSON.
"""

from __future__ import annotations

import csv
import json
import time
import types
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import click

from c360.contracts import SOURCES, Source
from c360.ingest import protect
from c360.ingest.loader import ensure_tables, landing_files, quarantine_duplicate_orders, rule_expression
from c360.privacy.keys import Keyring
from c360.settings import DBT_PROJECT_DIR, get_settings
from c360.warehouse import connect, write_frame

TARGETS = ("customer_360", "customer_rfm", "identity_map")
# The loader's order: the catalogue before the lines judged against it, orders before lines.
LOAD_ORDER = (
    "products",
    "crm_customers",
    "ecommerce_orders",
    "ecommerce_order_items",
    "web_events",
    "pos_transactions",
    "service_tickets",
    "product_reviews",
    "marketing_consent",
)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _raw_select(source: Source, keyring: Keyring) -> str:
    out = []
    for col in source.columns:
        if not col.protect:
            out.append(f'"{col.name}"')
            continue
        if col.hashed:
            out.append(f'{protect._hash_sql(col.name, keyring)} as "{col.name}_hash"')
        if col.encrypted:
            out.append(f'cast(null as varchar) as "{col.name}_enc"')
        out.append(f'{protect._masked_sql(col.name)} as "{col.name}_masked"')
    return ", ".join(out)


def load_source(con, source: Source, files: list[Path], keyring: Keyring, now: datetime) -> None:
    """All files of a source in one ``read_csv`` per header layout; malformed lines are skipped."""
    by_header: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in files:
        with open(path, newline="", encoding="utf-8") as fh:
            header = tuple(next(csv.reader(fh), []))
        # A file missing a contract column is refused by the platform's loader too.
        if all(name in header for name in source.column_names):
            by_header[header].append(str(path))
    known = {c.name: c.type for c in source.columns}
    for header, paths in by_header.items():
        columns = "{" + ", ".join(f"{_sql_str(n)}: {_sql_str(known.get(n, 'VARCHAR'))}" for n in header) + "}"
        select = ", ".join(f'"{n}"' for n in source.column_names)
        con.execute(
            f"""
            create or replace temp table _batch as
            select row_number() over () as _row, {select}
            from read_csv([{", ".join(_sql_str(p) for p in paths)}], header = true, columns = {columns},
                          auto_detect = false, delim = ',', quote = '"', escape = '"', strict_mode = true,
                          ignore_errors = true)
            """
        )
        con.execute(
            f"insert into raw.{source.name} by name select {_raw_select(source, keyring)} from "
            f"(select *, {rule_expression(source, now)} as _rule from _batch) b where _rule is null order by _row"
        )
        con.execute("drop table _batch")


def upstream_models(manifest: dict, targets: tuple[str, ...] = TARGETS) -> list[dict]:
    """Model nodes the targets depend on (and the targets), in dependency order."""
    nodes = manifest["nodes"]
    wanted = [uid for uid, n in nodes.items() if n["resource_type"] == "model" and n["name"] in targets]
    seen: set[str] = set()
    order: list[str] = []

    def visit(uid: str) -> None:
        if uid in seen or uid not in nodes:
            return
        seen.add(uid)
        for dep in nodes[uid].get("depends_on", {}).get("nodes", []):
            visit(dep)
        order.append(uid)

    for uid in sorted(wanted):
        visit(uid)
    return [nodes[uid] for uid in order]


def external_sources(manifest: dict, models: list[dict]) -> list[tuple[str, str]]:
    """(schema, table) of the non-raw sources the models read: tables written by Python assets."""
    out = set()
    for model in models:
        for dep in model.get("depends_on", {}).get("nodes", []):
            source = manifest["sources"].get(dep)
            if source and source["schema"] != "raw":
                out.add((source["schema"], source["identifier"]))
    return sorted(out)


def build_models(con, manifest: dict, models: list[dict]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for node in models:
        if node["resource_type"] == "seed":
            path = DBT_PROJECT_DIR / node["original_file_path"]
            types = node["config"].get("column_types") or {}
            con.execute(f'create schema if not exists "{node["schema"]}"')
            started = time.perf_counter()
            con.execute(
                f'create or replace table "{node["schema"]}"."{node["alias"]}" as select * from '
                f"read_csv({_sql_str(str(path))}, header = true"
                + (
                    ", types = {" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in types.items()) + "}"
                    if types
                    else ""
                )
                + ")"
            )
            seconds[node["name"]] = round(time.perf_counter() - started, 3)
            continue
        materialized = node["config"]["materialized"]
        if materialized == "ephemeral":
            continue
        kind = "view" if materialized == "view" else "table"
        code = node.get("compiled_code")
        if not code:
            raise ValueError(f"{node['unique_id']} has no compiled code: run `dbt compile` for it first")
        con.execute(f'create schema if not exists "{node["schema"]}"')
        started = time.perf_counter()
        if node.get("language") == "python":
            run_python_model(con, node, code)
        else:
            relation = f'"{node["schema"]}"."{node["alias"]}"'
            con.execute(f"create or replace {kind} {relation} as {code}")
            if _numbers_records_after_write(node):
                con.execute(NUMBER_RECORDS_BY_POSITION.format(relation=relation))
        seconds[node["name"]] = round(time.perf_counter() - started, 3)
    return seconds


# dbt's post-hooks are Jinja only dbt renders, and the manifest keeps them unrendered. The one
# that changes a model's rows is mirrored here: int_identity_records_unioned, built from scratch,
# leaves its records' numbers to the post-hook number_records_by_position
# (dbt_project/macros/identity_graph.sql), this statement on DuckDB.
NUMBER_RECORDS_BY_POSITION = "update {relation} set record_id = rowid - (select min(rowid) from {relation}) + 1 where record_id is null"


def _numbers_records_after_write(node: dict) -> bool:
    hooks = node["config"].get("post-hook") or []
    return any("number_records_by_position" in (hook.get("sql") or "") for hook in hooks)


def run_python_model(con, node: dict, code: str) -> None:
    """A dbt Python model (int_identity_component_labels) as dbt-duckdb runs it: its compiled
    module's model(dbt, session), refs read as relations of this connection, the frame it returns
    written as a table."""
    module = types.ModuleType(node["alias"])
    exec(compile(code, node["original_file_path"], "exec"), module.__dict__)  # noqa: S102 (dbt's own compiled model)
    frame = module.model(module.dbtObj(lambda name: con.query(f"select * from {name}")), con)
    write_frame(con, f'"{node["schema"]}"."{node["alias"]}"', frame)


def marts_summary(con, schema: str = "marts") -> dict:
    """What the floor, the pandas peer and the platform are compared on."""
    customers, revenue = con.execute(
        f"select count(*), round(sum(revenue), 2) from {schema}.customer_360"
    ).fetchall()[0]
    segments = dict(
        con.execute(
            f"select rfm_segment, count(*) from {schema}.customer_rfm group by 1 order by 1"
        ).fetchall()
    )
    return {"customers": customers, "revenue": float(revenue or 0), "rfm_segments": segments}


def run_floor(landing: Path, warehouse: Path, manifest_path: Path, platform_warehouse: Path | None) -> dict:
    settings = get_settings()
    keyring = Keyring.load(settings)
    manifest = json.loads(manifest_path.read_text())
    models = upstream_models(manifest)
    if warehouse.exists():
        warehouse.unlink()
    con = connect(warehouse)
    ensure_tables(con)
    # Tables written by the platform's Python assets (CLV...) are inputs here, not floor work.
    if platform_warehouse:
        con.execute(f"attach {_sql_str(str(platform_warehouse))} as platform (read_only)")
        for schema, table in external_sources(manifest, models):
            found = con.execute(
                "select count(*) from duckdb_tables() where database_name = 'platform' and schema_name = ? "
                "and table_name = ?",
                [schema, table],
            ).fetchall()[0][0]
            if found:
                con.execute(f'create schema if not exists "{schema}"')
                con.execute(
                    f'create table "{schema}"."{table}" as select * from platform."{schema}"."{table}"'
                )
        # An incremental model compiles against its existing table ({{ this }}); an empty copy
        # of it makes the floor's build a first build, as the platform's was.
        for node in models:
            if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental":
                con.execute(f'create schema if not exists "{node["schema"]}"')
                con.execute(
                    f'create table "{node["schema"]}"."{node["alias"]}" as '
                    f'select * from platform."{node["schema"]}"."{node["alias"]}" where false'
                )
        con.execute("detach platform")

    now = datetime.now().replace(microsecond=0)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for name in LOAD_ORDER:
        t0 = time.perf_counter()
        load_source(con, SOURCES[name], landing_files(landing, name), keyring, now)
        if name == "ecommerce_order_items":
            quarantine_duplicate_orders(con, "floor", now)
        timings[f"ingest.{name}"] = round(time.perf_counter() - t0, 3)
    ingest_s = time.perf_counter() - started
    # Counted after the duplicate-order sweep, which moves rows out of raw.
    rows = {name: con.execute(f"select count(*) from raw.{name}").fetchall()[0][0] for name in LOAD_ORDER}
    model_seconds = build_models(con, manifest, models)
    total_s = time.perf_counter() - started
    summary = marts_summary(con)
    con.close()
    return {
        "ingest_s": round(ingest_s, 2),
        "models_s": round(total_s - ingest_s, 2),
        "total_s": round(total_s, 2),
        "raw_rows": rows,
        "ingest_by_source_s": timings,
        "models": model_seconds,
        "marts": summary,
    }


@click.command()
@click.option("--landing", type=click.Path(path_type=Path, exists=True), required=True)
@click.option(
    "--warehouse",
    type=click.Path(path_type=Path),
    required=True,
    help="Floor database (file name warehouse.duckdb).",
)
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--platform-warehouse", type=click.Path(path_type=Path, exists=True), default=None)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def main(
    landing: Path, warehouse: Path, manifest_path: Path, platform_warehouse: Path | None, out: Path
) -> None:
    result = run_floor(landing, warehouse, manifest_path, platform_warehouse)
    out.write_text(json.dumps(result, indent=2))
    click.echo(json.dumps({k: result[k] for k in ("ingest_s", "models_s", "total_s")}))


if __name__ == "__main__":  # pragma: no cover
    main()
