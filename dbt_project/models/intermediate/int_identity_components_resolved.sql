-- The connected component (person) of every record. Components are found on the numbered
-- records and integer edges (connected_component_labels: on DuckDB a recursive propagation that
-- runs until no label changes). A component is named, as before the numbering, by its smallest
-- node of the record-and-key graph: the smallest record node or key string among its records, so
-- the customer ids int_customer_ids_assigned derives from it do not change.
with records as (
    select
        record_id,
        record_node,
        least(record_node, coalesce({{ list_min('link_keys') }}, record_node)) as smallest_node
    from {{ ref('int_identity_records_unioned') }}
),

-- Self edges (a key's first record) carry no link.
edges as (
    select record_id, linked_record_id
    from {{ ref('int_identity_edges_linked') }}
    where record_id <> linked_record_id
),

adjacency as (
    select record_id as node, linked_record_id as neighbour from edges
    union all
    select linked_record_id, record_id from edges
),

labels as (
    {{ connected_component_labels('adjacency') }}
),

-- A record without edges is a component of its own.
labelled as (
    select r.record_node, r.smallest_node, coalesce(l.label, r.record_id) as label
    from records r
    left join labels l on l.node = r.record_id
),

component_names as (
    select label, min(smallest_node) as component
    from labelled
    group by label
),

final as (
    select l.record_node, n.component
    from labelled l
    join component_names n on n.label = l.label
)

select * from final
