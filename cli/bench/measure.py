"""Run one benchmark stage in a child process and measure its wall clock and peak memory.

Every stage runs in its own process so that its peak RSS is its own: the resident memory of
the whole process tree (dbt runs as a grandchild of ``c360 run``) is sampled from ``/proc``,
and the kernel's own high-water mark of the child (``wait4``'s ``ru_maxrss``) is kept as a floor
under the samples, which can miss a short spike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3
SAMPLE_EVERY_S = 0.25


@dataclass
class StageRun:
    seconds: float
    peak_rss_bytes: int
    returncode: int
    log: Path
    load_avg: tuple[float, float, float] = field(default_factory=lambda: os.getloadavg())
    # (epoch seconds, bytes) every SAMPLE_EVERY_S: which part of a run held the memory
    # (``peak_between`` with a step's start and end from the Dagster event log).
    rss_samples: list[tuple[float, int]] = field(default_factory=list, repr=False)

    @property
    def peak_rss_gib(self) -> float:
        return round(self.peak_rss_bytes / GIB, 3)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants, now."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_bytes(pid)
        todo += _children(pid)
    return total


def run_stage(
    argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> StageRun:
    """Run ``argv`` to completion with output to ``log``; never raises on a failing command."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = 0
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                rss = tree_rss_bytes(proc.pid)
                samples.append((time.time(), rss))
                peak = max(peak, rss)
                done.wait(SAMPLE_EVERY_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4 (not proc.wait) to get the child's own rusage: ru_maxrss covers it and the
        # descendants it waited for, in KiB on Linux.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return StageRun(
        seconds=round(seconds, 2),
        peak_rss_bytes=max(peak, usage.ru_maxrss * 1024),
        returncode=proc.returncode,
        log=log,
        rss_samples=samples,
    )


def peak_between(samples: list[tuple[float, int]], start: float, end: float) -> int | None:
    """The largest sampled RSS from ``start`` to ``end`` (epoch seconds); a span shorter than the
    sampling interval gets the first sample after its start. None when no sample is that late."""
    inside = [rss for t, rss in samples if start <= t <= end]
    if inside:
        return max(inside)
    after = [rss for t, rss in samples if t >= start]
    return after[0] if after else None


def python_stage(module: str, *args: str) -> list[str]:
    """argv running ``python -m <module> <args>`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def c360_stage(*args: str) -> list[str]:
    return python_stage("cli.main", *args)
