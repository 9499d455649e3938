-- Label propagation ran enough rounds: no edge joins two records with different customer ids.
with edges as (
    select * from {{ ref('int_identity_edges_linked') }} where edge_kind = 'fuzzy_name_dob_postcode'
),
assigned as (
    select * from {{ ref('int_customer_ids_assigned') }}
),
key_groups as (
    select e.node_b as link_key, count(distinct a.customer_id) as customers
    from {{ ref('int_identity_edges_linked') }} e
    join assigned a on a.record_node = e.node_a
    where e.edge_kind = 'key'
    group by 1
)
select link_key as unconverged from key_groups where customers > 1
union all
select e.node_a
from edges e
join assigned a on a.record_node = e.node_a
join assigned b on b.record_node = e.node_b
where a.customer_id <> b.customer_id
