-- Components are complete: no edge joins two records with different customer ids (records that
-- share a key are all linked to its first record, so this covers every key and fuzzy link).
with edges as (
    select * from {{ ref('int_identity_edges_linked') }}
),
record_customers as (
    select r.record_id, a.customer_id
    from {{ ref('int_identity_records_unioned') }} r
    join {{ ref('int_customer_ids_assigned') }} a on a.record_node = r.record_node
)
select e.record_id, e.linked_record_id, e.edge_kind
from edges e
join record_customers a on a.record_id = e.record_id
join record_customers b on b.record_id = e.linked_record_id
where a.customer_id <> b.customer_id
