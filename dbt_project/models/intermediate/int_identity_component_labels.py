"""The component label of every record on an identity edge: the smallest record number of its
connected component (int_identity_components_resolved names components and keeps their history
from these).

DuckDB only (dbt_project.yml enables it there): union-find over the integer edges in scipy
(c360.identity.component_labels), because DuckDB cannot spill the state of the recursive SQL that
did this, which at 1M customers needed about 7 GB by itself. The whole graph each run: at 1M
customers it costs seconds, so the daily run needs no state of its own here. Other engines
propagate labels in SQL inside int_identity_components_resolved."""

import pyarrow as pa

from c360.identity import component_labels


def model(dbt, session):
    dbt.config(materialized="table")
    # Self edges (a key's first record) carry no link.
    edges = (
        dbt.ref("int_identity_edges_linked")
        .filter("record_id <> linked_record_id")
        .select("record_id, linked_record_id")
        .fetchnumpy()
    )
    nodes, labels = component_labels(edges["record_id"], edges["linked_record_id"])
    del edges
    return pa.table({"node": nodes, "label": labels})
