-- Edges of the identity graph: record -> key for every deterministic key, and record -> record
-- for fuzzy links. Fuzzy links are only made where they are safe: two CRM records in the same
-- postcode block, born the same day, whose normalised names are near-identical.
with records as (
    select * from {{ ref('int_identity_records_unioned') }}
),

key_edges as (
    select record_node as node_a, {{ explode_list('link_keys') }} as node_b, 'key' as edge_kind
    from records
),

-- A record with no key still needs a node of its own.
self_edges as (
    select record_node as node_a, record_node as node_b, 'self' as edge_kind
    from records
    where {{ list_size('link_keys') }} = 0
),

crm as (
    select record_node, name_key, birth_date, postcode
    from records
    where source = 'crm_customers' and name_key <> '' and birth_date is not null and postcode is not null
),

fuzzy_edges as (
    select a.record_node as node_a, b.record_node as node_b, 'fuzzy_name_dob_postcode' as edge_kind
    from crm a
    join crm b
      on a.postcode = b.postcode
     and a.birth_date = b.birth_date
     and a.record_node < b.record_node
    where {{ jaro_winkler('a.name_key', 'b.name_key') }} >= {{ var('fuzzy_name_threshold') }}
),

final as (
    select * from key_edges
    union all select * from self_edges
    union all select * from fuzzy_edges
)

select * from final
