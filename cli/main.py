"""The ``c360`` command: generate data, run the pipeline, evaluate, protect and inspect.

Every sub-command is a ``click`` command named ``<name>_command`` in the module of what it does;
this module only groups them. Heavy imports (Dagster, MLflow, scikit-learn) stay inside the
command functions, so ``c360 --help`` answers at once.
"""

from __future__ import annotations

import click

from cli import app, generate, maintenance, privacy, run
from cli.bench import app_pages as bench_app
from cli.bench import command as bench
from cli.evals import campaigns, churn, clv, identity, quality, recommendations, sentiment
from cli.process import run_as_process


@click.group(help="Customer 360: unify, clean, protect and model customer data.")
def main() -> None:
    pass


@main.group(
    name="eval", help="Evaluate a part of the platform; prints a table and writes reports/eval_<x>.json."
)
def eval_group() -> None:
    pass


for command in (
    generate.generate_command,
    run.run_command,
    run.ingest_command,
    run.summary_command,
    run.dagster_home_command,
    privacy.keys_command,
    privacy.reveal_command,
    privacy.erase_command,
    privacy.scan_pii_command,
    maintenance.compact_command,
    app.app_command,
    bench.bench_command,
    bench_app.bench_app_command,
):
    main.add_command(command)
for command in (
    identity.eval_identity_command,
    clv.eval_clv_command,
    quality.eval_quality_command,
    recommendations.eval_recs_command,
    churn.eval_churn_command,
    sentiment.eval_sentiment_command,
    campaigns.eval_campaigns_command,
):
    eval_group.add_command(command)


def console() -> None:
    """The ``c360`` script: the commands above as the process's whole work (cli/process.py)."""
    run_as_process(main)


if __name__ == "__main__":  # pragma: no cover
    console()
