"""What the model assets share with MLflow and the Dagster UI: one place that points MLflow at
C360_HOME's store, opens an experiment, and turns a run into the link and table schema that a
materialization shows."""

import dagster as dg

from c360.settings import Settings, get_settings
from ml import registry

MLFLOW_UI = "http://127.0.0.1:5000"  # `make ui`


def configure_mlflow() -> Settings:
    """Point MLflow at C360_HOME's tracking store and artifact root; returns the settings."""
    settings = get_settings().ensure_dirs()
    registry.configure(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    return settings


def experiment_id(name: str) -> str:
    """Configure MLflow and return the id of experiment ``name``, created when missing."""
    settings = configure_mlflow()
    return registry.get_or_create_experiment(name, settings.mlflow_artifact_root)


def run_url(experiment: str, run_id: str) -> str:
    """The run's page in the MLflow UI that `make ui` serves."""
    return f"{MLFLOW_UI}/#/experiments/{experiment}/runs/{run_id}"


def run_metadata(experiment: str, run_id: str) -> dict:
    """Materialization metadata linking back to the MLflow run."""
    return {"mlflow_run_id": run_id, "mlflow_run": dg.MetadataValue.url(run_url(experiment, run_id))}


def column_schema(columns) -> dg.TableSchema:
    """``dagster/column_schema`` from ``(name, sql type, description)`` triples."""
    return dg.TableSchema(columns=[dg.TableColumn(n, t, description=d) for n, t, d in columns])
