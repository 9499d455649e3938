"""Freed memory handed back to the system between the steps of an in-process run.

``c360 run`` (and the bench's stages) execute every selected asset in one Python process, one
step after another. A step's big arrays are freed when it ends, but the allocators keep much of
that memory for reuse: glibc's malloc keeps freed chunks in its heaps (one arena per thread that
ever allocated) and Arrow's pool keeps its pages, so the next step's peak can sit on top of the
last one's leftovers. Not measured on its own: at 1M customers the recommendations step's own
read set its 7.35-8.55 GiB peaks (it started at 2.2 GiB after the recommender), and that read was
what changed (orchestration/recommendations/assets.py, _coded_interactions).
"""

from __future__ import annotations

import ctypes
import gc
import sys

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


@dg.success_hook(name="release_memory_after_step")
def release_memory_after_success(_context: dg.HookContext) -> None:
    release_memory()


@dg.failure_hook(name="release_memory_after_failed_step")
def release_memory_after_failure(_context: dg.HookContext) -> None:
    release_memory()


# For jobs whose steps share one process (the in-process runs of cli/runner.py). The multiprocess
# executor (the Dagster UI, schedules) runs each step in a process of its own, which ends with it.
RELEASE_MEMORY_HOOKS = {release_memory_after_success, release_memory_after_failure}
