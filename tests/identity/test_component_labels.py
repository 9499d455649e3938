"""c360.identity.component_labels against a plain union-find written here, on hand-made graphs
and random ones (dense and sparse node numbers)."""

import numpy as np
import pytest

from c360.identity import component_labels


def reference_labels(a, b) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a, b, strict=True):
        rx, ry = find(int(x)), find(int(y))
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)  # the root is always the smallest node
    return {node: find(node) for node in parent}


def as_dict(nodes, labels) -> dict[int, int]:
    return dict(zip(nodes.tolist(), labels.tolist(), strict=True))


def test_a_chain_takes_the_label_of_its_far_end():
    # 5 joins the chain 10-20-...-60 only at its end: the whole chain is labelled 5.
    a = [20, 30, 40, 50, 60, 60, 2, 1]
    b = [10, 20, 30, 40, 50, 5, 1, 1]
    nodes, labels = component_labels(a, b)
    assert as_dict(nodes, labels) == {1: 1, 2: 1, 5: 5, 10: 5, 20: 5, 30: 5, 40: 5, 50: 5, 60: 5}
    assert list(nodes) == sorted(nodes)


def test_a_self_edge_is_a_node_of_its_own_and_an_empty_graph_is_empty():
    nodes, labels = component_labels([7], [7])
    assert as_dict(nodes, labels) == {7: 7}
    nodes, labels = component_labels(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert len(nodes) == 0 and len(labels) == 0


@pytest.mark.parametrize("spread", [1, 10**12], ids=["dense", "sparse"])
def test_random_graphs_equal_a_plain_union_find(spread):
    rng = np.random.default_rng(7)
    nodes_drawn = rng.choice(5_000, size=3_000, replace=False).astype(np.int64) * spread
    a = rng.choice(nodes_drawn, 2_500)
    b = rng.choice(nodes_drawn, 2_500)
    nodes, labels = component_labels(a, b)
    assert as_dict(nodes, labels) == reference_labels(a, b)


def test_bad_edges_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="non-negative"):
        component_labels([-1], [2])
    with pytest.raises(ValueError, match="differ in length"):
        component_labels([1, 2], [2])
