"""The ``c360`` command line and what only it runs: the in-process runner, the evaluations and the
benchmarks. The top layer: it may import ``orchestration``, ``ml`` and ``c360``; nothing imports it."""

import os

# scikit-learn's OpenMP threads wait passively instead of spinning: on a shared 2-core machine
# spinning threads starve each other (a churn fit: 47 s against 9 s). Why, in ml/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
