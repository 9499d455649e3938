"""Run one benchmark stage in a child process and measure its wall clock and peak memory.

Every stage runs in its own process so that its peak RSS is its own: the resident memory of
the whole process tree (dbt runs as a grandchild of ``c360 run``) is sampled from ``/proc``,
and the kernel's own high-water mark of the child (``wait4``'s ``ru_maxrss``) is kept as a floor
under the samples, which can miss a short spike.

CPU-seconds are measured beside the wall clock: this machine is shared and its speed moves from
hour to hour (the same code's L build and floors moved by up to 40% between two days), while the
CPU a stage burns moves less. The whole stage's come from ``wait4`` (user + system, the child and
every descendant it waited for); a step's inside a run from the process tree's CPU time sampled
from ``/proc`` with the memory (``cpu_between``).
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
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    # User + system CPU-seconds of the child and the descendants it waited for (wait4).
    cpu_seconds: float | None = None
    # (epoch seconds, CPU-seconds of the process tree so far), sampled with the memory: the CPU a
    # part of the run used (``cpu_between``).
    cpu_samples: list[tuple[float, float]] = field(default_factory=list, repr=False)

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


def _cpu_ticks(pid: int) -> int:
    """User + system clock ticks of a process (all its threads) and of its children it waited
    for (/proc/<pid>/stat fields 14-17: utime, stime, cutime, cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return 0
    # The command name (field 2) is in parentheses and may hold spaces: count from its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    try:
        return sum(int(v) for v in fields[11:15])
    except (IndexError, ValueError):
        return 0


def tree_usage(root: int) -> tuple[int, float]:
    """(resident bytes, CPU-seconds so far) of a process and all its descendants, now. A
    descendant that ended counts in its parent's children's time once the parent waited for it."""
    rss, ticks, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        rss += _rss_bytes(pid)
        ticks += _cpu_ticks(pid)
        todo += _children(pid)
    return rss, ticks / _CLOCK_TICKS


def run_stage(
    argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> StageRun:
    """Run ``argv`` to completion with output to ``log``; never raises on a failing command."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = 0
    samples: list[tuple[float, int]] = []
    cpu_samples: list[tuple[float, float]] = []
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                rss, cpu = tree_usage(proc.pid)
                now = time.time()
                samples.append((now, rss))
                if cpu:  # 0: the child is gone (or not yet readable)
                    cpu_samples.append((now, cpu))
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
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2),
        cpu_samples=cpu_samples,
    )


def cpu_between(samples: list[tuple[float, float]], start: float, end: float) -> float | None:
    """CPU-seconds the sampled process tree used from ``start`` to ``end`` (epoch seconds), each
    end read off the samples by linear interpolation (clamped to the first and last sample).
    None without two samples. Samples SAMPLE_EVERY_S apart put an error of a fraction of a
    second on each end: good for stages and long steps, not for a step of a second."""
    import bisect

    if len(samples) < 2 or end < start:
        return None
    times = [t for t, _ in samples]

    def at(t: float) -> float:
        i = bisect.bisect_left(times, t)
        if i == 0:
            return samples[0][1]
        if i == len(samples):
            return samples[-1][1]
        (t0, c0), (t1, c1) = samples[i - 1], samples[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1

    return max(0.0, at(end) - at(start))


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
