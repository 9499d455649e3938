-- Components are complete: no edge joins two records with different customer ids (records that
-- share a key are all linked to its first record, so this covers every key and fuzzy link).
with edges as (
    select * from {{ ref('int_identity_edges_linked') }}
),
records as (
    select record_id, record_node from {{ ref('int_identity_records_unioned') }}
),
assigned as (
    select * from {{ ref('int_customer_ids_assigned') }}
)
select e.record_id, e.linked_record_id, e.edge_kind
from edges e
join records ra on ra.record_id = e.record_id
join records rb on rb.record_id = e.linked_record_id
join assigned a on a.record_node = ra.record_node
join assigned b on b.record_node = rb.record_node
where a.customer_id <> b.customer_id
