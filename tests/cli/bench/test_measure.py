"""cli/bench/measure.py: a stage's memory and CPU over time, so a run's peak and CPU-seconds can be
put on a step."""

import sys

from cli.bench.measure import GIB, cpu_between, peak_between, run_stage

MIB = 2**20

CHILD = """
import sys, time
time.sleep(0.8)
start = time.time()
block = bytearray(b"x") * (300 * 2**20)  # written, so resident
time.sleep(1.2)
end = time.time()
del block
time.sleep(0.8)
print(start, end)
"""


def test_a_stages_samples_put_its_memory_in_the_window_that_held_it(tmp_path):
    log = tmp_path / "child.log"
    run = run_stage([sys.executable, "-c", CHILD], log)
    assert run.returncode == 0, run.tail()
    start, end = map(float, log.read_text().split())
    times = [t for t, _ in run.rss_samples]
    assert times == sorted(times) and times[0] < start < end < times[-1]
    held = peak_between(run.rss_samples, start, end)
    before = peak_between(run.rss_samples, times[0], start - 0.3)
    after = peak_between(run.rss_samples, end + 0.3, times[-1])
    assert held >= 300 * MIB
    assert before < 200 * MIB and after < 200 * MIB
    assert run.peak_rss_bytes >= held


def test_peak_between_takes_the_largest_sample_inside_or_the_first_after_a_short_span():
    samples = [(10.0, 1 * GIB), (10.25, 3 * GIB), (10.5, 2 * GIB), (10.75, 1 * GIB)]
    assert peak_between(samples, 10.0, 10.5) == 3 * GIB
    assert peak_between(samples, 10.3, 10.6) == 2 * GIB
    # A step shorter than the sampling interval: the next sample is the nearest reading.
    assert peak_between(samples, 10.55, 10.6) == 1 * GIB
    assert peak_between(samples, 11.0, 12.0) is None


# Idle, then busy in this process for 1.5 s, then in a child it waits for (its time reaches the
# parent's children's time once reaped), then idle: the stage's CPU and where it was spent.
BUSY = """
import subprocess, sys, time
def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
time.sleep(0.8)
start = time.time()
spin(1.5)
end = time.time()
subprocess.run([sys.executable, "-c", "import time\\nend = time.process_time() + 1.0\\nwhile time.process_time() < end: pass"])
time.sleep(0.8)
print(start, end)
"""


def test_a_stages_cpu_seconds_count_its_children_and_fall_in_the_window_that_used_them(tmp_path):
    log = tmp_path / "busy.log"
    run = run_stage([sys.executable, "-c", BUSY], log)
    assert run.returncode == 0, run.tail()
    start, end = map(float, log.read_text().split()[-2:])
    # The spin in the stage and the one in its child: 2.5 CPU-s, plus two interpreters' start-up.
    assert 2.4 <= run.cpu_seconds <= 4.5
    cpus = [c for _, c in run.cpu_samples]
    assert cpus == sorted(cpus)  # the tree's CPU only grows, the reaped child's included
    assert cpus[-1] >= 2.4
    # Samples every 0.25 s: each end of the window is read to within a sample's worth of CPU.
    assert 1.0 <= cpu_between(run.cpu_samples, start, end) <= 2.0
    assert cpu_between(run.cpu_samples, run.cpu_samples[0][0], start - 0.3) < 0.5


def test_cpu_between_interpolates_between_samples_and_clamps_at_the_ends():
    samples = [(10.0, 1.0), (11.0, 3.0), (12.0, 3.5)]
    assert cpu_between(samples, 10.0, 12.0) == 2.5
    assert cpu_between(samples, 10.5, 11.5) == 1.25  # 2.0 at 10.5, 3.25 at 11.5
    assert cpu_between(samples, 9.0, 13.0) == 2.5  # clamped to the first and last sample
    assert cpu_between(samples, 11.0, 10.0) is None
    assert cpu_between(samples[:1], 10.0, 11.0) is None
