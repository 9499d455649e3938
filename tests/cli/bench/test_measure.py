"""cli/bench/measure.py: a stage's memory over time, so a run's peak can be put on a step."""

import sys

from cli.bench.measure import GIB, peak_between, run_stage

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
