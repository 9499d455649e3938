"""How a ``c360`` process ends: as Python ends one, less the teardown of the interpreter.

When a Python program exits, the interpreter first waits for its non-daemon threads and runs the
``atexit`` handlers (logging flushes its files, MLflow ends its runs), then tears itself down:
every module and object is freed one by one. That last part does nothing a finished ``c360``
command needs: the warehouse is closed and checkpointed when a run lets it go
(``c360.warehouse.held``), the Dagster and MLflow stores commit each write, and the system takes
the memory back at once. With Dagster, dbt, MLflow, scikit-learn and Great Expectations imported
it took 1.6 s after the imports alone, and 2.4-2.9 s after a daily run at 100k customers: about
a quarter of the 8-12 s that ``c360 run`` spent outside Dagster's run (timed on the bench's M
home; BENCHMARKS.md, twenty-ninth session).
``leave`` does the first two parts as the interpreter would, flushes the standard streams and
exits the process.

Only the process's own entry points use it (the ``c360`` script and ``python -m cli.main``): a
test or a notebook that calls the ``click`` command in its own process gets the usual
``SystemExit``, and so does a process run under a profiler or a debugger, which writes its
results after the program returns (``python -m cProfile -m cli.main run`` would write nothing).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_status(code: object) -> int:
    """The process status Python gives ``sys.exit(code)``: 0 for None, the number itself, or 1
    for anything else (which is printed to stderr, as Python prints it)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF  # as the system keeps it: -1 is 255
    print(code, file=sys.stderr)
    return 1


def leave(code: object = None) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, without the interpreter's teardown."""
    status = exit_status(code)
    # What Py_FinalizeEx does before tearing down, in its order: wait for the non-daemon threads
    # (this also tells a thread pool's workers to stop), then the atexit handlers, last registered
    # first.
    threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own call
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed, replaced or gone: nothing to flush
            pass
    os._exit(status)


def observed() -> bool:
    """A profiler or tracer watches this process (``python -m cProfile``, a debugger): they
    write their results after the program returns, which ``leave`` would never let happen."""
    return sys.getprofile() is not None or sys.gettrace() is not None


def run_as_process(command) -> NoReturn:
    """Run a ``click`` command as the process's whole work, then ``leave`` with its status
    (under a profiler or tracer, exit as Python does)."""
    try:
        command(prog_name="c360")
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    if observed():
        sys.exit(code)
    leave(code)
