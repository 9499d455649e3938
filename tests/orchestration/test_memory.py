"""What a step freed goes back to the system before the next step of an in-process run starts."""

import gc
import os
import sys

import pytest

from orchestration.memory import release_memory

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_held_by_malloc_goes_back_to_the_system():
    # 4 KiB buffers come from malloc's heap (not mmap), as a step's many mid-sized arrays do. One
    # kept in every 64 pins the heap, so glibc cannot shrink it on its own when the rest are freed.
    blocks = [bytearray(b"x" * 4096) for _ in range(100_000)]
    pinned = blocks[::64]
    del blocks
    gc.collect()
    held = rss_bytes()

    assert release_memory() is True

    released = held - rss_bytes()
    assert released > 200 * 2**20, f"only {released / 2**20:.0f} MiB of ~390 MiB freed went back"
    assert all(len(block) == 4096 and block[-1:] == b"x" for block in pinned)  # the live ones stay
