"""Great Expectations imported in a background thread as a ``c360 run`` starts.

A run's steps share one process (``cli/runner.py``), and a library is imported by the first step
that needs it, on the run's path: Great Expectations (3-4 s: every expectation, ``scipy.stats``
included) by the first quality gate. Imported from the run's start in a thread, it loads while
the ingest keeps the main thread waiting on DuckDB, and the gate finds it loaded: at M the daily
run's first gate took 3.15-3.83 s before, 0.86-1.17 s after, with the ingest no slower
(BENCHMARKS, twentieth session). scikit-learn and MLflow, imported the same way for the
segments and the recommendations, showed no gain beyond the runs' noise: they are left to
their steps. Only a run with a quality gate imports it (a run of one dbt model does not).

Why this is safe to do beside the steps: Python imports each module once, under a lock per
module, so a step importing a library the thread is still loading waits for it, then finds it
whole. A deadlock needs two modules that import each other, each being loaded by one thread at
the same time; the step waits at the library's top package, which the thread holds for the whole
of the library's import. A library that fails to import here is left to the step, which imports
it again and reports the error itself.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable

log = logging.getLogger(__name__)

# The first quality gate imports Great Expectations (expectations/suite.py).
GATE_MODULES = ("great_expectations",)


def modules_for(job) -> list[str]:
    """The libraries to import ahead for the steps of ``job`` (a resolved asset job)."""
    # Here, not at the top: the run has loaded the definitions by now.
    from orchestration.quality.checks import GATE_NAME

    checks = job.asset_layer.asset_graph.asset_check_keys
    return list(GATE_MODULES) if any(check.name == GATE_NAME for check in checks) else []


def _import_all(modules: Iterable[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the step imports it again and reports the error itself
            log.debug("warm import of %s failed; the step that needs it imports it", name, exc_info=True)


def start(modules: Iterable[str]) -> threading.Thread | None:
    """Import ``modules`` in a daemon thread (it never holds up the process's exit); None when
    there is nothing to import."""
    modules = list(modules)
    if not modules:
        return None
    thread = threading.Thread(target=_import_all, args=(modules,), name="c360-warm-imports", daemon=True)
    thread.start()
    return thread
