"""Which ready dbt node a free thread takes next: on a first build, the one with the longest chain
of nodes below it; on an incremental build, dbt's own order (``C360_DBT_LONGEST_CHAIN_FIRST``,
default ``auto``; see the end).

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

With the longest chain first, for the dbt commands the run's process runs itself
(``orchestration/dbt/in_process.py``):
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

**When.** Measured in the same hour (BENCHMARKS.md, twenty-eighth session), the longest chain first
made the M full build's main dbt step a fifth shorter in two bench pairs, and the 1M-customer daily
run 14% longer in two pairs. A first build runs every model whole, and heavy siblings hold both
threads while the chain waits: in the L bench of 2026-12-07 (dbt's order for both builds then), the
full build's main step started the chain's head 52 s in, behind the browsing rollup, its next model
waited another 19 s for the sessionisation, and `int_interactions_weighted`, the last of the chain,
33 s behind `int_customer_categories_ranked` (about 100 s of a 537 s step). An incremental build's
main step is already one chain of cheap models, and taking the chain first only put heavier
siblings beside it. So ``auto`` (the default) decides per dbt command: the longest chain first when
the command builds from scratch (``--full-refresh``, or the warehouse does not hold the identity
chain's first table yet: ``first_build``), dbt's order otherwise. ``1`` and ``0`` force either
order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

# The switch; unset means AUTO.
SWITCH = "C360_DBT_LONGEST_CHAIN_FIRST"
AUTO = "auto"
# The table whose absence marks a first build: the identity chain's first model, which every build
# writes and every incremental one keeps (the chain whose order this module is about).
FIRST_BUILD_SENTINEL = ("intermediate", "int_identity_records_unioned")


def setting(env: Mapping[str, str]) -> str:
    """``"1"`` (longest chain first), ``"0"`` (dbt's order) or ``AUTO``, from ``env`` (a dbt step's
    environment, or this process's). Unset or empty is ``AUTO``; any other value turns it on, as
    before ``AUTO`` existed."""
    value = env.get(SWITCH, "").strip().lower()
    if value in ("", AUTO):
        return AUTO
    return "0" if value == "0" else "1"


def requested(env: Mapping[str, str]) -> bool:
    """Whether ``env`` forces the longest chain first for every command."""
    return setting(env) == "1"


def first_build(command: list[str], warehouse: Path) -> bool:
    """Whether a dbt command builds the DuckDB ``warehouse`` from scratch: ``--full-refresh``, or
    the warehouse does not hold FIRST_BUILD_SENTINEL (a new home). Reads the catalog only, in a
    read-only connection closed before dbt opens its own (1 open per dbt command). A warehouse
    that cannot be opened (locked by another writer: dbt would fail too) counts as built."""
    if "--full-refresh" in command:
        return True
    if not warehouse.exists():
        return True
    import duckdb

    from c360.warehouse import table_exists

    # A plain DuckDB connection, not c360.warehouse.connect: in a run that holds the warehouse, that
    # would open the held instance again, and dbt, next, could not open the file.
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return False
    try:
        return not table_exists(con, *FIRST_BUILD_SENTINEL)
    finally:
        con.close()


def wanted(env: Mapping[str, str], command: list[str], warehouse: Path) -> bool:
    """Whether this dbt command takes the longest chain first: as ``env`` forces it, else (``AUTO``)
    on a first build only."""
    value = setting(env)
    if value != AUTO:
        return value == "1"
    return first_build(command, warehouse)


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
