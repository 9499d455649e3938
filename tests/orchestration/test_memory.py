"""What a step freed goes back to the system before the next step of an in-process run starts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

# In a fresh interpreter: in a long-lived test worker the buffers would fill holes that earlier
# tests left in a heap already resident, and neither their allocation nor their release would
# show in the process's RSS (seen in CI: 0 MiB back).
FRAGMENT_FREE_AND_RELEASE = """
import gc, json, os
from orchestration.memory import release_memory

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

# 4 KiB buffers come from malloc's heap (not mmap), as a step's many mid-sized arrays do. One
# kept in every 64 pins the heap, so glibc cannot shrink it on its own when the rest are freed.
before = rss()
blocks = [bytearray(b"x" * 4096) for _ in range(100_000)]
allocated = rss() - before
pinned = blocks[::64]
del blocks
gc.collect()
held = rss()
trimmed = release_memory()
print(json.dumps({
    "allocated": allocated,
    "released": held - rss(),
    "trimmed": trimmed,
    "pinned_intact": all(len(b) == 4096 and b[-1:] == b"x" for b in pinned),
}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_held_by_malloc_goes_back_to_the_system():
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENT_FREE_AND_RELEASE],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])

    assert found["allocated"] > 300 * 2**20, found  # the buffers did land in resident memory
    assert found["trimmed"] is True
    released = found["released"]
    assert released > 200 * 2**20, f"only {released / 2**20:.0f} MiB of ~390 MiB freed went back"
    assert found["pinned_intact"]  # the live ones stay


def test_between_steps_survivors_are_frozen_new_cycles_still_collected_and_all_handed_back():
    import gc
    import weakref

    from orchestration.memory import release_memory_between_steps, unfrozen_after

    class Node:
        pass

    assert gc.get_freeze_count() == 0
    with unfrozen_after():
        kept = Node()
        kept.self = kept  # alive at the step's end: frozen, no longer walked
        release_memory_between_steps()
        assert gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()

        dropped = Node()
        dropped.self = dropped  # a cycle a later step makes and drops
        gone = weakref.ref(dropped)
        del dropped
        release_memory_between_steps()
        assert gone() is None  # collected: only the frozen objects are skipped
        assert gc.get_freeze_count() >= frozen

        stale = weakref.ref(kept)
        del kept  # dropped while frozen: waits for the run's end
        gc.collect()
        assert stale() is not None
    assert gc.get_freeze_count() == 0  # handed back when the run ends
    gc.collect()
    assert stale() is None


def test_between_steps_a_held_warehouse_that_caches_much_is_let_go(tmp_path, monkeypatch):
    """A run's held DuckDB instance keeps its buffer pool from step to step: past the cap the
    hook closes it, so the next step does not start on top of the last one's cached tables."""
    from c360 import warehouse
    from orchestration.memory import release_memory_between_steps, unfrozen_after

    monkeypatch.setenv("C360_HOME", str(tmp_path))
    path = tmp_path / "warehouse.duckdb"
    with warehouse.held(path), unfrozen_after():
        con = warehouse.connect()
        # ~9 MiB of blocks in DuckDB's buffer pool (md5 strings hardly compress).
        con.execute("create table raw.big as select range as x, md5(range::varchar) as y from range(500000)")
        con.close()
        monkeypatch.setattr(warehouse, "HELD_MEMORY_CAP", 2**40)
        release_memory_between_steps()
        assert warehouse._hold.con is not None  # caching less than the cap: kept for the next step
        monkeypatch.setattr(warehouse, "HELD_MEMORY_CAP", 2**20)
        release_memory_between_steps()
        assert warehouse._hold.con is None
        con = warehouse.connect(read_only=True)  # opened again at the next connection
        assert con.execute("select count(*) from raw.big").fetchone() == (500000,)
        con.close()
