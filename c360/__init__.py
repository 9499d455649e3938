"""Customer 360: shared platform code (settings, landing contract, generator, ingestion, privacy, CLI)."""

import os

__version__ = "0.1.0"

# scikit-learn's OpenMP threads wait passively instead of spinning: on a shared 2-core machine
# spinning threads starve each other (a churn fit: 47 s against 9 s). Why, in ml/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Library caches under C360_HOME, telemetry off: before matplotlib, dbt or MLflow is imported.
from c360.settings import get_settings, library_defaults

for _name, _value in library_defaults(get_settings()).items():
    os.environ.setdefault(_name, _value)
