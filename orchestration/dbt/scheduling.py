"""Which ready dbt node a free thread takes next, with ``C360_DBT_LONGEST_CHAIN_FIRST=1``: the one
with the longest chain of nodes below it (off by default, see the end).

dbt orders ready nodes by topological level, ties by name (``GraphQueue._get_scores``), and its
main loop takes every node from that queue as soon as the node is ready, handing it to the thread
pool, whose own queue is first in, first out (``GraphRunnableTask.run_queue``). So a node that
becomes ready while the threads are busy waits behind every node that was ready before it,
whatever its order. In this project the three clickstream models are ready together: by name
``int_device_products_touched`` and ``int_device_sessions_sessionised`` come before
``int_device_visits_summarised``, the head of the identity chain (records, edges, components,
ids, purchases, interactions) that every mart waits for. At 1M customers the full build's two
threads spent their first 80 s on the first two while the chain waited; the chain's next model
then waited another 90 s behind nodes queued before its parent's tests were ready.

Here, for the dbt commands the run's process runs itself (``orchestration/dbt/in_process.py``):
- a node's score is the length, in nodes, of the longest path from it to the end of the graph
  dbt queues (models and tests of the selection), so among ready nodes the one with the most
  work behind it goes first, ties by name as before;
- the main loop takes a node from the queue only when one of dbt's threads is free, so the order
  is decided when a thread can start the node, not when the node became ready.

This is list scheduling by longest remaining chain, with every node counted as one (no timing
state to keep). dbt's graph, dependencies, threads and failure handling are untouched: only the
order among nodes already free to run changes.

dbt 1.11 has no setting for this (dbt-labs/dbt-core#10632 asks for a per-model ``priority``), so
three methods are replaced in this process: ``GraphQueue._get_scores`` and ``GraphQueue.get``,
and ``GraphRunnableTask.run_queue`` to tell the queue how many threads the command has.
dbt-core is pinned below 1.12; if any of them is gone in a later dbt, nothing is replaced and
dbt's order stays.

Off by default since 2026-12-07: only ``C360_DBT_LONGEST_CHAIN_FIRST=1`` turns it on. Measured
in the same hour (BENCHMARKS.md, twenty-eighth session), it made the M full build's main dbt step
a fifth shorter in two bench pairs, but the 1M-customer daily run, whose main dbt step is one
chain of incremental models either way, 14% longer in two pairs. The platform is sized for the
second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

# The switch, and its default: off (dbt's own order).
SWITCH = "C360_DBT_LONGEST_CHAIN_FIRST"


def requested(env: Mapping[str, str]) -> bool:
    """Whether ``env`` (a dbt step's environment, or this process's) asks for the longest chain first."""
    return env.get(SWITCH, "0") != "0"


_lock = threading.Lock()
# dbt's methods as they were, by (class, name), to put back (``longest_chain_first(False)``);
# empty while dbt's order is in place.
_own: dict[tuple[type, str], Callable] = {}


def longest_chain_scores(graph) -> dict[str, int]:
    """Each node's score for dbt's priority queue (lower runs first): the longest path, in
    nodes, from the node to a node with no successor, subtracted from the graph's longest, so the
    head of the longest chain scores 0 and a node with nothing after it the most."""
    import networkx as nx

    chain: dict[str, int] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        chain[node] = 1 + max((chain[child] for child in graph.successors(node)), default=0)
    longest = max(chain.values(), default=0)
    return {node: longest - length for node, length in chain.items()}


def longest_chain_first(enabled: bool = True) -> bool:
    """Make dbt's commands in this process hand a free thread the ready node with the longest
    chain below it (or, with ``enabled`` False, put dbt's own methods back). Idempotent. Returns
    whether the longest chain goes first: False when disabled, or when this dbt lacks a method
    replaced here."""
    from dbt.graph.queue import GraphQueue
    from dbt.task.runnable import GraphRunnableTask

    with _lock:
        if not enabled:
            for (owner, name), method in _own.items():
                setattr(owner, name, method)
            _own.clear()
            return False
        if _own:
            return True
        own_get = getattr(GraphQueue, "get", None)
        own_run_queue = getattr(GraphRunnableTask, "run_queue", None)
        if not all(callable(m) for m in (getattr(GraphQueue, "_get_scores", None), own_get, own_run_queue)):
            return False

        def _get_scores(self, graph) -> dict[str, int]:
            return longest_chain_scores(graph)

        def get(self, block: bool = True, timeout: float | None = None):
            # Wait for a free thread before choosing: dbt's pool would queue the node behind
            # every node handed out before it (first in, first out).
            slots = getattr(self, "_c360_threads", None)
            if slots:
                with self.lock:
                    while len(self.in_progress) >= slots:
                        self.some_task_done.wait()
            return own_get(self, block, timeout)

        def run_queue(self, pool) -> None:
            if self.job_queue is not None and not self.config.args.single_threaded:
                self.job_queue._c360_threads = max(int(self.config.threads or 1), 1)
            return own_run_queue(self, pool)

        for owner, name, method in (
            (GraphQueue, "_get_scores", _get_scores),
            (GraphQueue, "get", get),
            (GraphRunnableTask, "run_queue", run_queue),
        ):
            _own[(owner, name)] = getattr(owner, name)
            setattr(owner, name, method)
        return True
