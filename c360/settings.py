"""The one place that decides the environment: paths, warehouse, MLflow, keys.

Everything comes from environment variables with safe local defaults, all under
``C360_HOME`` (default ``./.c360``). Nothing is written outside it by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# DuckDB's memory allowance for the platform's own connections (ingest, gates, models, exports)
# when C360_DUCKDB_MEMORY_LIMIT is unset. DuckDB's own default is 80% of the machine's RAM: at 1M
# customers a model step then held 10-17 GB, DuckDB's buffers beside its own arrays. With 4 GB
# (3.7 GiB) every model step of an L run stays under 8 GiB; DuckDB spills what does not fit. dbt's
# profile defaults to 6GB instead: identity no longer needs more (union-find replaced a recursive
# CTE that could not spill), and two dbt threads fill what they get (8.2 GiB RSS at L with 8GB).
# The L bench of 2026-12-04 (b8bdeff) ran with 6GB: its dbt step peaked at 6.65 GiB and the whole
# run at 7.76 GiB (the recommender), in 1,347 s against 2,316 s for the previous L run.
DEFAULT_DUCKDB_MEMORY_LIMIT = "4GB"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


@dataclass(frozen=True)
class Settings:
    home: Path

    @property
    def warehouse(self) -> Path:
        return Path(os.environ.get("C360_WAREHOUSE", self.home / "warehouse.duckdb"))

    @property
    def landing(self) -> Path:
        return Path(os.environ.get("C360_LANDING", self.home / "landing"))

    @property
    def truth(self) -> Path:
        return self.landing / "_truth"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME", self.home / "dagster"))

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{self.mlflow_dir / 'mlflow.db'}")

    @property
    def mlflow_artifact_root(self) -> str:
        return os.environ.get("C360_MLFLOW_ARTIFACTS", (self.mlflow_dir / "artifacts").as_uri())

    @property
    def dbt_runs(self) -> Path:
        """Where each dbt invocation of a run writes its target (run results, compiled SQL) and log."""
        return self.home / "dbt" / "runs"

    @property
    def dbt_docs(self) -> Path:
        """The dbt docs site (``make ui`` serves it on 127.0.0.1:8580)."""
        return self.home / "dbt" / "docs"

    @property
    def data_docs(self) -> Path:
        """The Great Expectations project root of the gates' results and Data Docs."""
        return self.reports / "data_docs"

    @property
    def data_docs_site(self) -> Path:
        """The Data Docs site GX builds there (``make ui`` serves it on 127.0.0.1:8581)."""
        return self.data_docs / "gx" / "uncommitted" / "data_docs" / "local_site"

    @property
    def keys_dir(self) -> Path:
        # Keys live outside the repository; the default is inside C360_HOME, which git ignores.
        return Path(os.environ.get("C360_KEYS_DIR", self.home / "keys"))

    @property
    def duckdb_threads(self) -> int | None:
        value = os.environ.get("C360_DUCKDB_THREADS")
        return int(value) if value else None

    @property
    def duckdb_memory_limit(self) -> str:
        return os.environ.get("C360_DUCKDB_MEMORY_LIMIT") or DEFAULT_DUCKDB_MEMORY_LIMIT

    @property
    def training_threads(self) -> int:
        # Two cores shared by the warehouse pool and the UIs: more BLAS/OpenMP threads for model
        # fitting and scoring only oversubscribe them.
        return int(os.environ.get("C360_TRAINING_THREADS", "2"))

    @property
    def writer_lock_wait_s(self) -> float:
        # How long a writer waits for readers (the app, an export, a poller) to release DuckDB's
        # file lock before its step fails.
        return float(os.environ.get("C360_WRITER_LOCK_WAIT_S", "60"))

    def ensure_dirs(self) -> Settings:
        for path in (self.home, self.landing, self.reports, self.dagster_home, self.mlflow_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self


def library_defaults(settings: Settings) -> dict[str, str]:
    """Environment the libraries the platform runs read, so that their caches stay under
    C360_HOME (matplotlib's font cache, dbt's logs) and none of them phones home (MLflow's
    telemetry writes an installation id to ~/.config/mlflow). A value the user set wins."""
    return {
        "MPLCONFIGDIR": str(settings.home / "cache" / "matplotlib"),
        "DBT_LOG_PATH": str(settings.home / "dbt" / "logs"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def get_settings() -> Settings:
    """Read the environment now (tests change C360_HOME between calls)."""
    return Settings(home=Path(os.environ.get("C360_HOME", ".c360")).resolve())
