"""Connected components of the identity graph, for the dbt model int_identity_component_labels.

Why not SQL: on DuckDB the components were a recursive CTE (min-label propagation), whose state
DuckDB cannot spill. At 1M customers (19M records, 28M edges) it needed about 7 GB of its own and
ran out of dbt's memory beside the rest of the model. Union-find over integer arrays
(scipy.sparse.csgraph) finds the same components in seconds and well under 1 GB."""

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

# Nodes are numbered records, nearly dense from 0: the graph is sized by the largest node. Should
# the numbers ever be far sparser than the edges (a huge id among few edges), they are compacted
# first, so memory stays bounded by the edges, not by the largest number.
SPARSE_FACTOR = 4


def component_labels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The undirected graph with an edge (a[i], b[i]) for each i, over non-negative integer nodes:
    (nodes, labels), one entry per node on an edge, in node order, its label the smallest node of
    its component. Self edges and repeated edges are allowed."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"edge ends differ in length: {a.shape} and {b.shape}")
    if len(a) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if min(a.min(), b.min()) < 0:
        raise ValueError("nodes must be non-negative integers")
    size = int(max(a.max(), b.max())) + 1
    if size > SPARSE_FACTOR * len(a) + 1_000_000:
        # Compacted in sorted order, so a smaller index is still a smaller node.
        nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
        compact_a, compact_b = inverse[: len(a)], inverse[len(a) :]
        _, labels = component_labels(compact_a, compact_b)
        return nodes, nodes[labels]
    graph = csr_matrix((np.ones(len(a), dtype=bool), (a, b)), shape=(size, size))
    count, component = connected_components(graph, directed=False)
    smallest = np.full(count, size, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(size, dtype=np.int64))
    on_edge = np.zeros(size, dtype=bool)
    on_edge[a] = True
    on_edge[b] = True
    nodes = np.flatnonzero(on_edge)
    return nodes, smallest[component[nodes]]
