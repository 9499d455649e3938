"""The ``c360 generate`` command."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("generate")
@click.option(
    "--customers", type=int, default=20_000, show_default=True, help="Number of persons to simulate."
)
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed; same seed, same bytes.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Landing folder to write (one sub-folder per source plus _truth/).",
)
@click.option("--end-date", default="2026-09-30", show_default=True, help="Last simulated day (YYYY-MM-DD).")
@click.option(
    "--months", type=int, default=24, show_default=True, help="Months of history up to the end date."
)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate_command(
    customers: int, seed: int, out_dir: Path, end_date: str, months: int, fmt: str, quiet: bool
) -> None:
    """Generate synthetic Customer 360 source data with planted defects and truth files."""
    from c360.generate.core import generate

    summary = generate(
        out_dir, customers=customers, seed=seed, end_date=end_date, months=months, fmt=fmt, progress=not quiet
    )
    click.echo(f"wrote {summary['files']} files to {out_dir} in {summary['seconds']} s")
    for source, n in summary["rows"].items():
        click.echo(f"  {source:<24} {n:>12,}")
    click.echo(f"  bayes AUC {summary['bayes_auc']:.3f}, churn rate {summary['churn_rate']:.1%}")
