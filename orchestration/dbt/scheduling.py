"""The order in which dbt hands ready nodes to its threads: the longest remaining chain first.

dbt's ``GraphQueue`` gives each node its topological depth as priority (``_get_scores``): ready
nodes run shallowest first, whatever waits on them. With two threads that starves the long chain
of this project (identity records -> edges -> labels -> components -> ids -> matched records ->
purchases -> lines -> interactions -> behaviour, each with its blocking tests): a thread goes to a
shallow side model (revenue, funnel, RFM movement, their tests) while a chain node that everything
after it waits for is ready. Here a node's priority is the number of nodes on the longest path from
it to the end of the graph (its "height"), depth breaking ties: the chain runs as soon as it can
and the side models fill the other thread around it.

Replaying the measured node times of a 100k-customer build through both orders with two threads
(a list-scheduling simulation of the recorded graph): the full build's first dbt step 47.1 s in
dbt's order against 39.2 s longest-path-first (its critical path is 35.4 s), the daily run's 18.9 s
against 16.3 s (critical path 13.6 s); weighting the heights by the nodes' real times gained
nothing more (39.0 s, 16.1 s), so no timing state is kept. BENCHMARKS.md, nineteenth session.

Only for dbt in this process (``orchestration/dbt/in_process.py``); a dbt subprocess (Spark,
``C360_DBT_IN_PROCESS=0``) keeps dbt's order.
"""

from __future__ import annotations

from typing import Any


def longest_path_first(graph: Any) -> dict[str, tuple[int, int]]:
    """Each node's priority in a dbt graph (a networkx DiGraph), lowest first: minus its height
    (nodes on the longest path from it to a node nothing depends on), then its depth."""
    import networkx as nx

    order = list(nx.topological_sort(graph))
    depth: dict[str, int] = {}
    for node in order:
        depth[node] = 1 + max((depth[p] for p in graph.predecessors(node)), default=-1)
    height: dict[str, int] = {}
    for node in reversed(order):
        height[node] = 1 + max((height[c] for c in graph.successors(node)), default=0)
    return {node: (-height[node], depth[node]) for node in order}


def _scores(_queue, graph) -> dict[str, tuple[int, int]]:
    return longest_path_first(graph)


# dbt's own scoring, kept when it is replaced (the tests compare the two orders).
dbt_depth_first = None


def use_longest_path_first() -> None:
    """Make this process's dbt hand out ready nodes longest-remaining-chain first (idempotent).
    ``GraphQueue.__init__`` scores the graph once through ``_get_scores`` and queues
    ``(score, node)`` pairs, so scores only need to compare with each other."""
    global dbt_depth_first
    from dbt.graph.queue import GraphQueue

    if GraphQueue._get_scores is not _scores:
        dbt_depth_first = GraphQueue._get_scores
        GraphQueue._get_scores = _scores
