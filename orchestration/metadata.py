"""What a materialization shows a person in the Dagster UI, shared by every domain: the link to
the MLflow run, a table's column schema, small frames as Markdown tables."""

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd

MLFLOW_UI = "http://127.0.0.1:5000"  # `make ui`


def run_url(experiment: str, run_id: str) -> str:
    """The run's page in the MLflow UI that `make ui` serves."""
    return f"{MLFLOW_UI}/#/experiments/{experiment}/runs/{run_id}"


def run_metadata(experiment: str, run_id: str) -> dict:
    """Materialization metadata linking back to the MLflow run."""
    return {"mlflow_run_id": run_id, "mlflow_run": dg.MetadataValue.url(run_url(experiment, run_id))}


def column_schema(columns) -> dg.TableSchema:
    """``dagster/column_schema`` from ``(name, sql type, description)`` triples."""
    return dg.TableSchema(columns=[dg.TableColumn(n, t, description=d) for n, t, d in columns])


def markdown_table(df: "pd.DataFrame") -> dg.MetadataValue:
    header = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    rows = "".join(
        "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |\n"
        for row in df.itertuples(index=False)
    )
    return dg.MetadataValue.md(header + rows)


def skipped(context, reason: str, **metadata) -> dg.MaterializeResult:
    """The materialization of an asset that had nothing to do (a model without the data to train
    on): it succeeds, so what depends on it still runs, and says why in the UI, the log and the
    ``c360 run`` summary (which lists every asset whose metadata holds ``skipped``)."""
    context.log.warning(f"{context.asset_key.to_user_string()} skipped: {reason}")
    return dg.MaterializeResult(metadata={"skipped": reason, **metadata})


def skip_reason(context, asset_key: dg.AssetKey) -> str | None:
    """Why the latest materialization of ``asset_key`` skipped its work, or None if it did it."""
    event = context.instance.get_latest_materialization_event(asset_key)
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return str(meta["skipped"].value) if "skipped" in meta else None
