-- Edges of the identity graph between numbered records. Records sharing a key are linked to
-- the key's first record (a star per key: the same components as linking every pair, in as many
-- edges as records); a key no other record holds links nothing. Fuzzy links are only made where
-- they are safe: two CRM records in the same postcode block, born the same day, whose normalised
-- names are near-identical.
-- Each read of the records is narrow (DuckDB would otherwise materialise a shared CTE whole).
with record_keys as (
    select record_id, {{ explode_list('link_keys') }} as link_key
    from {{ ref('int_identity_records_unioned') }}
),

-- One pass over the key strings: each shared key's records come out as a list of integers.
-- min < max rather than a count: a record never holds one key twice, but this stays right if one did.
shared_keys as (
    select
        split_part(link_key, ':', 1) as key_kind,
        min(record_id) as first_record_id,
        {{ unordered_list_agg('record_id') }} as record_ids
    from record_keys
    group by link_key
    having min(record_id) < max(record_id)
),

-- The first record too gets its edge (to itself): it shares the key as much as the others.
key_edges as (
    select
        {{ explode_list('record_ids') }} as record_id,
        first_record_id as linked_record_id,
        'key' as edge_kind,
        key_kind
    from shared_keys
),

crm as (
    select record_id, record_node, name_key, birth_date, postcode
    from {{ ref('int_identity_records_unioned') }}
    where source = 'crm_customers' and name_key <> '' and birth_date is not null and postcode is not null
),

fuzzy_edges as (
    select
        a.record_id,
        b.record_id as linked_record_id,
        'fuzzy_name_dob_postcode' as edge_kind,
        cast(null as {{ string_type() }}) as key_kind
    from crm a
    join crm b
      on a.postcode = b.postcode
     and a.birth_date = b.birth_date
     and a.record_node < b.record_node
    where {{ jaro_winkler('a.name_key', 'b.name_key') }} >= {{ var('fuzzy_name_threshold') }}
),

final as (
    select * from key_edges
    union all select * from fuzzy_edges
)

select * from final
