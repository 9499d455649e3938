"""dbt in this process hands ready nodes to its threads longest remaining chain first
(orchestration/dbt/scheduling.py), through dbt's own queue."""

import inspect
import subprocess
import sys

import networkx as nx
from dbt.graph.queue import GraphQueue

from orchestration.dbt import scheduling


class _Node:
    def __init__(self, unique_id: str) -> None:
        self.unique_id = unique_id


class _Manifest:
    def expect(self, unique_id: str) -> _Node:
        return _Node(unique_id)


def _graph() -> nx.DiGraph:
    # A chain a -> b -> c -> d, a side node y after a, and a lone node x.
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d"), ("a", "y")])
    graph.add_node("x")
    return graph


def _one_thread_order(graph: nx.DiGraph) -> list[str]:
    queue = GraphQueue(graph.copy(), _Manifest(), set(graph))
    order = []
    while len(order) < len(graph):
        node = queue.get(block=False)
        order.append(node.unique_id)
        queue.mark_done(node.unique_id)
    return order


def test_the_longest_chain_is_handed_out_first_side_nodes_fill_in_by_depth():
    scheduling.use_longest_path_first()
    assert _one_thread_order(_graph()) == ["a", "b", "c", "x", "y", "d"]
    # dbt's own order (depth first): the side nodes delay the chain.
    GraphQueue._get_scores = scheduling.dbt_depth_first
    try:
        assert _one_thread_order(_graph()) == ["a", "x", "b", "y", "c", "d"]
    finally:
        scheduling.use_longest_path_first()


def test_the_scores_are_height_then_depth():
    scores = scheduling.longest_path_first(_graph())
    assert scores == {"a": (-4, 0), "b": (-3, 1), "c": (-2, 2), "d": (-1, 3), "y": (-1, 1), "x": (-1, 0)}


def test_dbts_queue_still_scores_through_the_method_replaced():
    # A dbt upgrade that scored elsewhere would silently bring its own order back.
    source = inspect.getsource(GraphQueue.__init__)
    assert "self._get_scores(self.graph)" in source
    assert "self._scores[node]" in inspect.getsource(GraphQueue._find_new_additions)


def test_a_dbt_command_in_this_process_schedules_longest_path_first():
    # A fresh interpreter: nothing has replaced dbt's order yet.
    code = (
        "import os\n"
        "from dbt.graph.queue import GraphQueue\n"
        "from orchestration.dbt import scheduling\n"
        "from orchestration.dbt.in_process import InProcessDbt\n"
        "assert GraphQueue._get_scores is not scheduling._scores\n"
        "dbt = InProcessDbt(['dbt', '--version'], dict(os.environ))\n"
        "list(dbt.stdout)\n"
        "dbt.wait()\n"
        "print(GraphQueue._get_scores is scheduling._scores)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "True"
