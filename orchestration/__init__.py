"""Dagster definitions of the platform: assets, checks, jobs, schedules and resources by domain."""

import os
import warnings

# Before anything loads scikit-learn's libgomp: its threads wait passively instead of spinning
# (a churn fit on a busy 2-core machine: 47 s spinning, 9 s passive). Why, in ml/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# dagster-dbt installs sqlglot[rs], whose sqlglotrs shim warns on import that it is deprecated in
# favour of sqlglotc (installed beside it and used): a dependency's packaging, not ours to act on.
warnings.filterwarnings("ignore", message="sqlglotrs is deprecated", category=DeprecationWarning)
