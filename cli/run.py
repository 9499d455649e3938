"""``c360 run``, ``c360 ingest``, ``c360 summary`` and ``c360 dagster-home``: the pipeline in process,
recorded in C360_HOME's Dagster instance, and what it produced."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from c360.settings import get_settings

console = Console()


@click.command(
    "run", help="Materialize every asset, or a Dagster selection (e.g. 'key:marts/customer_360+')."
)
@click.option("--select", "selection", default=None, help="Dagster asset selection string.")
@click.option("--summary/--no-summary", default=True, help="Print tables, checks and models afterwards.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Build downstream of the ingest even when no landing file is new (after changing a dbt "
    "model or a contract); by default such a run loads nothing and skips the rest.",
)
def run_command(selection: str | None, summary: bool, rebuild: bool) -> None:
    from cli.runner import NothingSelected, materialize
    from orchestration.ingest.assets import REBUILD_TAG

    tags = {REBUILD_TAG: "true"} if rebuild else None
    try:
        result = materialize(selection, tags=tags, echo=Console(file=sys.stdout).print)
    except NothingSelected as error:
        raise click.BadParameter(str(error), param_hint="--select") from None
    if summary:
        print_summary(result)
    print_outcome(result)
    sys.exit(0 if succeeded(result) else 1)


@click.command("ingest", help="Load landing files into raw (optionally mapping another layout first).")
@click.option(
    "--mapping",
    type=click.Choice(["olist", "cdnow"]),
    default=None,
    help="Convert a known layout into landing files first: the Olist e-commerce sample, or the CDNOW "
    "transactions as a bare orders-only landing.",
)
@click.option(
    "--src",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Where that layout is (default: ../shared/data/olist_sample; CDNOW's file in the lifetimes wheel).",
)
def ingest_command(mapping: str | None, src: Path | None) -> None:
    from cli.runner import materialize, prepare_instance

    settings = prepare_instance()
    if mapping:
        from c360.ingest.mappings import MAPPINGS
        from c360.ingest.mappings.olist import olist_dir

        if mapping == "olist":
            src = src or olist_dir()
        written = MAPPINGS[mapping](src, settings.landing)
        console.print(
            f"mapped {mapping} from {src or 'its default'} into {settings.landing}: {written['rows']}"
        )
    result = materialize("group:ingest", echo=Console(file=sys.stdout).print)
    print_summary(result)
    print_outcome(result)
    sys.exit(0 if succeeded(result) else 1)


@click.command("dagster-home", help="Create C360_HOME's Dagster instance (dagster.yaml) and print its path.")
def dagster_home_command() -> None:
    from cli.runner import prepare_instance

    click.echo(prepare_instance().dagster_home)


@click.command("summary", help="Print tables with row counts, the last run's checks and registered models.")
def summary_command() -> None:
    print_summary(None)


def succeeded(result) -> bool:
    """A run fails when a step failed or a blocking check did; warnings, skipped models and
    rejected files are reported but are not failures."""
    return result.success and not result.checks_failed


def print_outcome(result) -> None:
    """What failed, what was skipped and why, which files were rejected: the last thing printed."""
    for failure in result.failures:
        console.print(f"[red]FAILED[/red] {failure}")
    for name in result.checks_failed:
        console.print(f"[red]FAILED check[/red] {name}")
    if result.skipped_steps:
        # With no failure, the ingest steps found no new landing files and materialized nothing.
        why = (
            "upstream failure or blocking check"
            if result.failures or result.checks_failed
            else "no new landing files: nothing upstream changed; `c360 run --rebuild` builds anyway"
        )
        console.print(f"[yellow]not run[/yellow] ({why}): {', '.join(result.skipped_steps)}")
    for asset, reason in result.skipped_assets.items():
        console.print(f"[yellow]skipped[/yellow] {asset}: {reason}")
    for rejected in result.rejected_files:
        console.print(f"[yellow]rejected file[/yellow] {rejected}")
    for name in result.checks_warned:
        console.print(f"[yellow]warning[/yellow] {name}")
    verdict = "[green]succeeded[/green]" if succeeded(result) else "[red]failed[/red]"
    console.print(f"Run {result.run_id} {verdict}. Full log: {result.log_path}")


def print_summary(result) -> None:
    from c360.warehouse import connect, row_counts

    settings = get_settings()
    if settings.warehouse.exists():
        con = connect(settings.warehouse, read_only=True)
        try:
            table = Table(title=f"Warehouse {settings.warehouse}")
            for col in ("schema", "table", "rows"):
                table.add_column(col, justify="right" if col == "rows" else "left")
            for schema, name, rows in row_counts(con):
                if not name.startswith("_"):
                    table.add_row(schema, name, f"{rows:,}")
            console.print(table)
        finally:
            con.close()
    if result is not None:
        console.print(
            f"Run {result.run_id}: {len(result.materialized)} assets materialized, "
            f"checks passed {len(result.checks_passed)}, failed {len(result.checks_failed)}, "
            f"warnings {len(result.checks_warned)}"
        )
    models = _registered_models(settings)
    if models:
        console.print("Registered models: " + ", ".join(models))
    console.print(
        "\nOpen the UIs with [bold]make ui[/bold]: Dagster http://127.0.0.1:3000, "
        "MLflow http://127.0.0.1:5000\n"
        f"Reports: {settings.reports}\nWarehouse: duckdb {settings.warehouse}"
    )


def _registered_models(settings) -> list[str]:
    db = settings.mlflow_dir / "mlflow.db"
    if not db.exists():
        return []
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        out = []
        for model in client.search_registered_models():
            aliases = ", ".join(f"@{a}=v{v}" for a, v in (model.aliases or {}).items())
            out.append(f"{model.name} ({aliases or 'no alias'})")
        return out
    except Exception as exc:  # noqa: BLE001 - the summary must not fail on a broken store
        return [f"(could not read MLflow: {exc})"]
