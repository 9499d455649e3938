"""MLflow helpers shared by the churn, recommender and CLV models.

Tracking setup, lineage of the training data (which warehouse table, as of when, which
Dagster run, dbt version and git commit), model registration and the promotion gate that
moves the ``champion`` alias only when a candidate beats it by a margin.

Privacy: datasets logged with ``log_lineage`` carry schema, row count and digest only, and
personal columns (ids, contact details) are dropped before MLflow ever sees the frame.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from c360.settings import PROJECT_ROOT, get_settings
from ml.pyfunc import lazy_subclass

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.tracking import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"

# Columns that identify or contact a person; any other "*_id" column is dropped too.
PERSONAL_COLUMNS = frozenset(
    {
        "customer_id",
        "email",
        "phone",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "address",
        "street",
        "postcode",
        "zip_code",
        "ip_address",
        "birth_date",
        "date_of_birth",
    }
)

TAG_SOURCE_TABLE = "c360.source_table"
TAG_AS_OF = "c360.as_of"
TAG_DATASET_DIGEST = "c360.dataset_digest"
TAG_DAGSTER_RUN_ID = "dagster.run_id"
TAG_DAGSTER_ASSET_KEY = "dagster.asset_key"
TAG_DBT_VERSION = "dbt.version"
TAG_GIT_SHA = "git.sha"


class _WarehouseTableSource:
    """A table of the DuckDB warehouse at an as-of date: ``duckdb://<path>#<schema.table>@<as_of>``."""

    def __init__(self, warehouse: str, table: str, as_of: str | None = None):
        self.warehouse = warehouse
        self.table = table
        self.as_of = as_of

    @property
    def uri(self) -> str:
        return f"{self.warehouse}#{self.table}" + (f"@{self.as_of}" if self.as_of else "")

    @staticmethod
    def _get_source_type() -> str:
        return "c360_warehouse_table"

    def load(self, **kwargs):
        # ML code never opens warehouse connections; assets hand it DataFrames.
        raise NotImplementedError("read the table through the warehouse resource, not from MLflow")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and raw_source.startswith("duckdb://") and "#" in raw_source

    @classmethod
    def _resolve(cls, raw_source: str) -> _WarehouseTableSource:
        warehouse, _, rest = raw_source.partition("#")
        table, _, as_of = rest.partition("@")
        return cls(warehouse, table, as_of or None)

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "warehouse": self.warehouse, "table": self.table, "as_of": self.as_of}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> _WarehouseTableSource:
        return cls(source_dict["warehouse"], source_dict["table"], source_dict.get("as_of"))


def _dataset_source() -> type:
    """``DatasetSource`` (MLflow's base class) imported on first use, for ``lazy_subclass``."""
    from mlflow.data.dataset_source import DatasetSource

    return DatasetSource


def _warehouse_table_source_class() -> type:
    """``WarehouseTableSource``, built and registered with MLflow on first use (import cost,
    ml/pyfunc.py)."""
    if "WarehouseTableSource" not in globals():
        from mlflow.data.dataset_source_registry import register_dataset_source

        register_dataset_source(
            lazy_subclass(globals(), "WarehouseTableSource", _WarehouseTableSource, _dataset_source)
        )
    return globals()["WarehouseTableSource"]


def __getattr__(attr: str) -> type:
    if attr == "WarehouseTableSource":
        return _warehouse_table_source_class()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def _as_uri(location: str) -> str:
    """A URI for ``location``; plain paths become ``file://`` URIs."""
    if urlparse(location).scheme and not Path(location).drive:
        return location.rstrip("/")
    return Path(location).resolve().as_uri()


def configure(tracking_uri: str | None = None, artifact_root: str | None = None) -> str:
    """Point MLflow tracking and registry at ``tracking_uri`` (creating a sqlite file's folder);
    returns the artifact root new experiments use (``get_or_create_experiment``).

    Without arguments, both come from ``c360.settings``: C360_HOME's store, or
    ``MLFLOW_TRACKING_URI`` / ``C360_MLFLOW_ARTIFACTS``. The one MLflow set-up of the platform:
    assets, checks, evals and the CLI all call it.
    """
    import mlflow

    _warehouse_table_source_class()  # so runs read back resolve their dataset source
    if tracking_uri is None or artifact_root is None:
        settings = get_settings().ensure_dirs()
        tracking_uri = tracking_uri or settings.mlflow_tracking_uri
        artifact_root = artifact_root or settings.mlflow_artifact_root
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if _as_uri(artifact_root).startswith("file://"):
        Path(urlparse(_as_uri(artifact_root)).path).mkdir(parents=True, exist_ok=True)
    return artifact_root


def get_or_create_experiment(name: str, artifact_root: str | None = None) -> str:
    """Experiment id of ``name``, created with artifacts under ``<artifact_root>/<name>``; made active.

    An existing experiment keeps the artifact location it was created with.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None if artifact_root is None else f"{_as_uri(artifact_root)}/{name}"
        experiment_id = client.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def use_experiment(name: str) -> str:
    """``configure()`` from the settings, then make experiment ``name`` active; returns its id."""
    return get_or_create_experiment(name, configure())


def git_sha(repo_dir: Path = PROJECT_ROOT) -> str:
    """Commit of the code: ``C360_GIT_SHA`` if set (images without .git), else ``git rev-parse HEAD``."""
    if sha := os.environ.get("C360_GIT_SHA"):
        return sha
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            check=False,
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def dbt_version() -> str:
    try:
        return importlib.metadata.version("dbt-core")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# log_lineage's parameters shadow these names.
_current_git_sha = git_sha
_installed_dbt_version = dbt_version


def drop_personal_columns(df: pd.DataFrame) -> pd.DataFrame:
    personal = [c for c in df.columns if str(c).lower() in PERSONAL_COLUMNS or str(c).lower().endswith("_id")]
    return df.drop(columns=personal)


def dataset_digest(df: pd.DataFrame) -> str:
    """Digest of every row and column (MLflow's own digest only looks at the first rows)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update("\x1f".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:32]


def log_lineage(
    dataset_df_or_digest: pd.DataFrame | str,
    source_table: str,
    as_of: str | None = None,
    dagster_run_id: str | None = None,
    asset_key: str | None = None,
    dbt_version: str | None = None,
    git_sha: str | None = None,
    context: str = "training",
    *,
    warehouse: str | None = None,
    targets: str | None = None,
    name: str | None = None,
) -> str:
    """Record where the active run's data came from; returns the dataset digest.

    Logs a dataset input whose source is ``duckdb://<warehouse>#<source_table>@<as_of>`` and
    sets the lineage tags. A DataFrame is digested in full, then logged without personal
    columns (schema and row count only, MLflow stores no rows); a string is taken as the digest.
    ``dbt_version`` and ``git_sha`` default to the installed dbt-core and the current commit.
    """
    import mlflow
    import pandas as pd
    from mlflow.data.meta_dataset import MetaDataset

    if mlflow.active_run() is None:
        raise RuntimeError("log_lineage needs an active MLflow run (use `with mlflow.start_run():`)")
    as_of = None if as_of is None else str(as_of)
    warehouse = warehouse or f"duckdb://{get_settings().warehouse}"
    source = _warehouse_table_source_class()(warehouse, source_table, as_of)
    dataset_name = name or source_table
    if isinstance(dataset_df_or_digest, pd.DataFrame):
        digest = dataset_digest(dataset_df_or_digest)
        public = drop_personal_columns(dataset_df_or_digest)
        dataset = mlflow.data.from_pandas(
            public,
            source=source,
            name=dataset_name,
            digest=digest,
            targets=targets if targets in public.columns else None,
        )
    else:
        digest = str(dataset_df_or_digest)
        dataset = MetaDataset(source=source, name=dataset_name, digest=digest)
    mlflow.log_input(dataset, context=context)
    if asset_key is not None and hasattr(asset_key, "to_user_string"):
        asset_key = asset_key.to_user_string()
    tags = {
        TAG_SOURCE_TABLE: source_table,
        TAG_AS_OF: as_of,
        TAG_DATASET_DIGEST: digest,
        TAG_DAGSTER_RUN_ID: dagster_run_id,
        TAG_DAGSTER_ASSET_KEY: asset_key,
        TAG_DBT_VERSION: dbt_version or _installed_dbt_version(),
        TAG_GIT_SHA: git_sha or _current_git_sha(),
    }
    mlflow.set_tags({key: value for key, value in tags.items() if value is not None})
    return digest


def register(run_id: str, artifact_name: str, model_name: str) -> int:
    """Register the model logged as ``artifact_name`` in run ``run_id``; returns the new version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run = client.get_run(run_id)
    logged = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{artifact_name}'",
        max_results=1,
    )
    # MLflow 3 keeps models outside run artifacts; runs:/ still works for older runs.
    model_uri = logged[0].model_uri if logged else f"runs:/{run_id}/{artifact_name}"
    version = mlflow.register_model(model_uri, model_name)
    return int(version.version)


def set_alias(model_name: str, alias: str, version: int | str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_registered_model_alias(model_name, alias, str(version))


def _version_by_alias(client: MlflowClient, model_name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def _run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    return dict(client.get_run(run_id).data.metrics) if run_id else {}


def champion_info(model_name: str) -> dict | None:
    """``{"version", "run_id", "metrics"}`` of the current champion, or None if there is none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    champion = _version_by_alias(client, model_name, CHAMPION)
    if champion is None:
        return None
    return {
        "version": int(champion.version),
        "run_id": champion.run_id,
        "metrics": _run_metrics(client, champion.run_id),
    }


def promote_if_better(
    model_name: str,
    candidate_version: int | str,
    metric: str,
    higher_is_better: bool = True,
    margin: float = 0.005,
) -> tuple[bool, str]:
    """Make the candidate ``challenger``; move ``champion`` to it if it wins by ``margin``.

    The candidate wins when there is no champion yet, or when its run's ``metric`` beats the
    champion's by at least ``margin`` (in the better direction). Returns (promoted, reason);
    the reason is also stored as the ``c360.promotion`` tag of the candidate version.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    candidate_version = str(candidate_version)
    candidate = client.get_model_version(model_name, candidate_version)
    candidate_metrics = _run_metrics(client, candidate.run_id)
    if metric not in candidate_metrics:
        raise ValueError(
            f"run {candidate.run_id} of {model_name} v{candidate_version} has no metric {metric!r}; "
            f"it has {sorted(candidate_metrics)}"
        )
    value = candidate_metrics[metric]
    set_alias(model_name, CHALLENGER, candidate_version)
    champion = _version_by_alias(client, model_name, CHAMPION)

    if champion is None:
        promoted, reason = (
            True,
            f"no champion yet: v{candidate_version} ({metric}={value:.4f}) becomes champion",
        )
    elif str(champion.version) == candidate_version:
        promoted, reason = False, f"v{candidate_version} is already the champion"
    elif math.isnan(value):
        promoted, reason = False, f"v{candidate_version} has {metric}=NaN; champion v{champion.version} stays"
    else:
        incumbent = _run_metrics(client, champion.run_id).get(metric, math.nan)
        if math.isnan(incumbent):
            promoted = True
            reason = f"champion v{champion.version} has no {metric}; v{candidate_version} ({value:.4f}) replaces it"
        else:
            gain = value - incumbent if higher_is_better else incumbent - value
            # Tolerance so that a gain of exactly `margin` is not lost to float rounding.
            promoted = gain >= margin - 1e-12
            verdict = "promoted" if promoted else "not promoted"
            reason = (
                f"v{candidate_version} {metric}={value:.4f} vs champion v{champion.version} "
                f"{incumbent:.4f}: gain {gain:+.4f} {'>=' if promoted else '<'} margin {margin} -> {verdict}"
            )
    if promoted:
        set_alias(model_name, CHAMPION, candidate_version)
    client.set_model_version_tag(model_name, candidate_version, "c360.promotion", reason)
    return promoted, reason


def register_challenger(run_id: str, model_name: str, artifact_name: str = "model") -> int:
    """Register the model logged in run ``run_id`` as a new version of ``model_name`` with alias
    ``challenger``; returns the version. ``promote_challenger`` (the gate) decides the champion."""
    version = register(run_id, artifact_name, model_name)
    set_alias(model_name, CHALLENGER, version)
    return version


def promote_challenger(
    model_name: str,
    version: int | str,
    metric: str,
    *,
    higher_is_better: bool = True,
    margin: float = 0.0,
    floor: float | None = None,
) -> dict:
    """The promotion gate every registered model goes through: version ``version`` becomes
    ``champion`` when its run's ``metric`` clears ``floor`` (if any) and beats the champion's by
    ``margin`` (``promote_if_better``). Returns what happened; ``has_acceptable_champion`` is
    False when no champion is left that clears the floor (the blocking check then fails)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    candidate = client.get_model_version(model_name, str(version))
    value = client.get_run(candidate.run_id).data.metrics.get(metric, float("nan"))

    def acceptable(x: float) -> bool:
        if floor is None:
            return True
        return x >= floor if higher_is_better else x <= floor

    if not acceptable(value):
        set_alias(model_name, CHALLENGER, version)
        promoted, reason = False, f"v{version} {metric}={value:.4f} does not clear the floor {floor}"
    else:
        promoted, reason = promote_if_better(
            model_name, version, metric, higher_is_better=higher_is_better, margin=margin
        )
    champion = champion_info(model_name)
    champion_value = champion["metrics"].get(metric, float("nan")) if champion else float("nan")
    return {
        "challenger_version": int(version),
        "challenger_" + metric: float(value),
        "promoted": promoted,
        "reason": reason,
        "champion_version": champion["version"] if champion else None,
        "champion_" + metric: float(champion_value),
        "has_acceptable_champion": bool(champion) and (floor is None or acceptable(champion_value)),
    }
