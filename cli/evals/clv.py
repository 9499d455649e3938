"""``c360 eval clv``: reproduce the published CDNOW BG/NBD and Gamma-Gamma fits through the
platform's own ingestion, and summarise the CLV scores of the warehouse if there are any.

The CDNOW sample is written as an ``ecommerce_orders`` landing file in a throw-away folder,
loaded by the same loader the ingest assets use (contract, row rules, pseudonymisation) into
a throw-away DuckDB file with an ephemeral keyring, read back from ``raw.ecommerce_orders``
and fitted. Re-submitted-order de-duplication is deliberately not run: several CDNOW orders
on one day are real purchases (the RFM summary merges them into one purchase day).

With a warehouse, the weekly demand forecast (``ml.forecast.forecast``) is backtested against
seasonal-naive on the warehouse's weekly units per category: MASE and WAPE overall and per category.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import click
import duckdb

if TYPE_CHECKING:
    import pandas as pd


def ingest_cdnow(workdir: Path) -> tuple[pd.DataFrame, dict]:
    """Land and load CDNOW under ``workdir``; returns raw.ecommerce_orders (account_id,
    ordered_at, amount) and the load counts."""
    from c360.ingest.loader import load_source
    from c360.ingest.mappings.cdnow import SOURCE as CDNOW_SOURCE
    from c360.ingest.mappings.cdnow import map_cdnow
    from c360.privacy.keys import Keyring

    landing = workdir / "landing"
    map_cdnow(None, landing)
    con = duckdb.connect(str(workdir / "warehouse.duckdb"))
    try:
        loads, errors = load_source(
            con, CDNOW_SOURCE, landing, Keyring.generate(), run_id=f"eval-clv-{uuid.uuid4().hex[:12]}"
        )
        if errors:
            raise click.ClickException("; ".join(str(e) for e in errors))
        orders = con.execute(
            f"select account_id, ordered_at, amount from raw.{CDNOW_SOURCE} order by order_id"
        ).df()
        quarantined = dict(
            con.execute(
                "select rule, count(*) from quality.quarantine where source = ? group by rule", [CDNOW_SOURCE]
            ).fetchall()
        )
    finally:
        con.close()
    stats = {
        "rows_in": sum(load.rows_in for load in loads),
        "rows_loaded": sum(load.rows_loaded for load in loads),
        "rows_quarantined": sum(load.rows_quarantined for load in loads),
        "quarantined_by_rule": quarantined,
        "rows_in_raw": len(orders),
    }
    return orders, stats


def platform_clv_summary() -> dict | None:
    """Customers scored and tier counts of ``ml.clv`` in the configured warehouse, if it exists."""
    from c360.settings import get_settings
    from c360.warehouse import connect, table_exists

    warehouse = get_settings().warehouse
    if not warehouse.exists():
        return None
    try:
        con = connect(warehouse, read_only=True)
    except duckdb.Error as exc:  # e.g. a run holds the write lock
        return {"error": f"could not open {warehouse}: {exc}"}
    try:
        if not table_exists(con, "ml", "clv"):
            return None
        customers, total_clv, version, scored_at = con.execute(
            "select count(*), sum(clv), max(model_version), max(scored_at) from ml.clv"
        ).fetchone()
        tiers = con.execute(
            "select clv_tier, count(*), avg(clv), avg(p_alive) from ml.clv group by 1 "
            "order by list_position(['platinum', 'gold', 'silver', 'bronze'], clv_tier), 1"
        ).fetchall()
    finally:
        con.close()
    return {
        "customers_scored": int(customers),
        "total_clv": float(total_clv or 0.0),
        "model_version": version,
        "scored_at": scored_at,
        "tier_counts": {tier: int(n) for tier, n, _, _ in tiers},
        "tier_mean_clv": {tier: float(mean) for tier, _, mean, _ in tiers},
        "tier_mean_p_alive": {tier: float(alive) for tier, _, _, alive in tiers},
    }


def demand_backtest(horizon: int = 8, folds: int = 4) -> dict | None:
    """Rolling backtest of the demand forecast vs seasonal-naive on the configured warehouse."""
    from c360.settings import get_settings
    from c360.warehouse import connect, table_exists
    from ml import forecast
    from orchestration.forecast.assets import read_weekly_units

    warehouse = get_settings().warehouse
    if not warehouse.exists():
        return None
    try:
        con = connect(warehouse, read_only=True)
    except duckdb.Error as exc:
        return {"error": f"could not open {warehouse}: {exc}"}
    try:
        if not table_exists(con, "features", "category_weekly_units"):
            return None
        history = read_weekly_units(con)
    finally:
        con.close()
    if history["week_start"].nunique() <= horizon * folds:
        return {"error": f"{history['week_start'].nunique()} weeks of history: too short for the backtest"}
    models = {"forecast": forecast.forecast, "seasonal_naive": forecast.seasonal_naive}
    report = forecast.backtest_report(history, models, horizon=horizon, folds=folds)
    per_category = report["categories"].pivot(index="category", columns="model", values=["wape", "mase"])
    return {
        "weeks": int(history["week_start"].nunique()),
        "horizon_weeks": horizon,
        "folds": folds,
        "overall": {m: {k: float(v) for k, v in row.items()} for m, row in report["overall"].iterrows()},
        "categories": {
            str(c): {f"{metric}_{model}": float(row[(metric, model)]) for metric, model in row.index}
            for c, row in per_category.iterrows()
        },
        "models_chosen": forecast.chosen_models(history, horizon),
    }


def _print_demand(demand: dict | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if demand is None:
        console.print("Demand: no purchase lines in the warehouse yet.")
        return
    if "error" in demand:
        console.print(f"[yellow]Demand: {demand['error']}[/yellow]")
        return
    table = Table(
        title=f"Demand forecast vs seasonal-naive: {demand['folds']} x {demand['horizon_weeks']}-week rolling "
        f"backtest on {demand['weeks']} weeks"
    )
    for col in ("category", "model chosen", "WAPE %", "naive WAPE %", "MASE", "naive MASE"):
        table.add_column(col, justify="left" if col in ("category", "model chosen") else "right")
    for category, row in demand["categories"].items():
        table.add_row(
            category,
            demand["models_chosen"].get(category, ""),
            f"{row['wape_forecast']:.1f}",
            f"{row['wape_seasonal_naive']:.1f}",
            f"{row['mase_forecast']:.3f}",
            f"{row['mase_seasonal_naive']:.3f}",
        )
    ours, naive = demand["overall"]["forecast"], demand["overall"]["seasonal_naive"]
    table.add_row(
        "overall",
        "",
        f"{ours['wape']:.1f}",
        f"{naive['wape']:.1f}",
        f"{ours['mase']:.3f}",
        f"{naive['mase']:.3f}",
        style="bold",
    )
    console.print(table)


def _print(validation: dict, ingestion: dict, platform: dict | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"CDNOW through ingestion: {ingestion['rows_in']:,} rows in, {ingestion['rows_loaded']:,} loaded, "
        f"{ingestion['rows_quarantined']:,} quarantined; {validation['customers']:,} customers, "
        f"{validation['repeaters']:,} repeaters; fit {validation['fit_seconds']:.2f} s"
    )
    params = Table(title="CDNOW: fitted vs published (Fader, Hardie & Lee 2005)")
    for col in ("parameter", "fitted", "published", "relative error"):
        params.add_column(col, justify="left" if col == "parameter" else "right")
    for name, published in validation["published"].items():
        error = validation["rel_error"][name]
        style = "green" if error < 0.01 else "red"
        params.add_row(
            name, f"{validation['params'][name]:.4f}", f"{published:.3f}", f"[{style}]{error:.2%}[/{style}]"
        )
    console.print(params)

    holdout = validation["holdout"]
    table = Table(title=f"Holdout ({holdout['weeks']:.0f} weeks): repeat purchases per customer")
    for col in ("calibration frequency", "customers", "actual mean", "predicted mean"):
        table.add_column(col, justify="right")
    for row in holdout["by_frequency"]:
        table.add_row(
            row["frequency"],
            f"{row['customers']:,}",
            f"{row['actual_mean']:.3f}",
            f"{row['predicted_mean']:.3f}",
        )
    table.add_row(
        "total",
        f"{validation['customers']:,}",
        f"{holdout['actual_repeat']:,}",
        f"{holdout['predicted_repeat']:,.1f}",
        style="bold",
    )
    console.print(table)

    if platform is None:
        console.print("Warehouse: no ml.clv table yet (run `c360 run --select 'key:ml/clv'`).")
    elif "error" in platform:
        console.print(f"[yellow]Warehouse: {platform['error']}[/yellow]")
    else:
        tiers = Table(title=f"Warehouse ml.clv: {platform['customers_scored']:,} customers scored")
        for col in ("tier", "customers", "mean CLV", "mean P(alive)"):
            tiers.add_column(col, justify="left" if col == "tier" else "right")
        for tier, count in platform["tier_counts"].items():
            tiers.add_row(
                tier,
                f"{count:,}",
                f"{platform['tier_mean_clv'][tier]:,.2f}",
                f"{platform['tier_mean_p_alive'][tier]:.3f}",
            )
        console.print(tiers)


@click.command(
    "clv",
    help="Fit BG/NBD + Gamma-Gamma on the CDNOW sample loaded through the platform's ingestion, "
    "compare with the published parameters and the holdout; writes reports/eval_clv.json.",
)
def eval_clv_command() -> None:
    from cli.evals import write_report
    from ml.cdnow import cdnow_validation

    with tempfile.TemporaryDirectory(prefix="c360-eval-clv-") as tmp:
        orders, ingestion = ingest_cdnow(Path(tmp))
    validation = cdnow_validation(orders)
    platform = platform_clv_summary()
    demand = demand_backtest()
    _print(validation, ingestion, platform)
    _print_demand(demand)
    payload = {"cdnow": {**validation, "ingestion": ingestion}}
    if platform is not None:
        payload["platform"] = platform
    if demand is not None:
        payload["demand"] = demand
    path = write_report("clv", payload)
    click.echo(f"Report: {path}")
