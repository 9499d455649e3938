"""Freed memory handed back to the system between the steps of an in-process run.

``c360 run`` (and the bench's stages) execute every selected asset in one Python process, one
step after another. A step's big arrays are freed when it ends, but the allocators keep much of
that memory for reuse: glibc's malloc keeps freed chunks in its heaps (one arena per thread that
ever allocated) and Arrow's pool keeps its pages, so the next step's peak can sit on top of the
last one's leftovers. Not measured on its own: at 1M customers the recommendations step's own
read set its 7.35-8.55 GiB peaks (it started at 2.2 GiB after the recommender), and that read was
what changed (orchestration/recommendations/assets.py, _coded_interactions).

A full ``gc.collect()`` walks every object the process tracks, and an in-process run holds many
that live for the whole run: the definitions, dbt's parsed manifest (kept between the dbt steps,
orchestration/dbt/in_process.py), Great Expectations' and MLflow's modules. At 100k customers the
hook's collections took 0.32 s each, 16.5 of the 60 s of a daily run (51 steps, cProfile). So
after collecting, the hook freezes what survived (``gc.freeze``: moved to the permanent
generation, which collections do not walk, automatic ones in later steps included): each step's
collection walks only what was made since the last one. ``unfrozen_after`` hands the frozen
objects back to the collector when the run ends; until then a cycle among them that a later step
drops waits for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from collections.abc import Iterator

import dagster as dg


def _malloc_trim() -> bool:
    """glibc's ``malloc_trim(0)``: return the free pages of every arena to the system (no-op
    elsewhere). False where there is no glibc (macOS, musl)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def release_memory() -> bool:
    """Collect garbage, empty Arrow's pool of unused pages and trim glibc's heaps. True when
    glibc's heaps were trimmed."""
    gc.collect()
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
    return _malloc_trim()


def release_memory_between_steps() -> bool:
    """``release_memory``, then freeze what survived so the next step's collections skip it
    (see the module). Only inside ``unfrozen_after``. A warehouse the run holds
    (``c360.warehouse.held``) is let go first if DuckDB caches more than ``HELD_MEMORY_CAP`` in it
    (``warehouse.step_ended``)."""
    from c360 import warehouse

    warehouse.step_ended()
    trimmed = release_memory()
    gc.freeze()
    return trimmed


@contextlib.contextmanager
def unfrozen_after() -> Iterator[None]:
    """Hand the objects the steps froze back to the collector when the block ends (a test
    process runs many runs)."""
    try:
        yield
    finally:
        gc.unfreeze()


@dg.success_hook(name="release_memory_after_step")
def release_memory_after_success(_context: dg.HookContext) -> None:
    release_memory_between_steps()


@dg.failure_hook(name="release_memory_after_failed_step")
def release_memory_after_failure(_context: dg.HookContext) -> None:
    release_memory_between_steps()


# For jobs whose steps share one process (the in-process runs of cli/runner.py, inside
# ``unfrozen_after``). The multiprocess executor (the Dagster UI, schedules) runs each step in a
# process of its own, which ends with it.
RELEASE_MEMORY_HOOKS = {release_memory_after_success, release_memory_after_failure}
