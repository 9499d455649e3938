"""Pure model code: DataFrames in, models and metrics out; nothing here reads the warehouse."""

import os

# OpenMP threads (scikit-learn's HistGradientBoosting, through the libgomp it ships) spin while
# they wait for each other by default. On a busy 2-core machine (Dagster runs steps side by side,
# DuckDB has its own threads) a spinning thread holds a core its partner needs: one churn fit
# took 47 s with 2 threads against 9 s with PASSIVE waiting (load 7). libgomp reads this once,
# when it is loaded, so it is set before anything imports scikit-learn; a value set by the user
# wins. The same line is in c360/__init__.py, which every entry point imports first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Library caches under C360_HOME and MLflow telemetry off (c360/__init__.py), also when a notebook
# or script imports ml before anything else.
import c360  # noqa: F401
