-- Edges of the identity graph between numbered records. Records sharing a key are linked to
-- the key's first record (a star per key: the same components as linking every pair, in as many
-- edges as records); a key no other record holds links nothing. Fuzzy links are only made where
-- they are safe: two CRM records in the same postcode block, born the same day, whose normalised
-- names are near-identical.
-- Each read of the records is narrow (DuckDB would otherwise materialise a shared CTE whole).
--
-- Incremental on DuckDB (a table on Spark, as the other incremental facts). Each edge carries a
-- hash of its key (`key_hash`; one constant for the fuzzy pairs): a key's star is its edges of
-- one hash. A run recomputes the stars of the keys the records written since its last build hold
-- now or held then (their edges say which), from every record holding one of those keys, and
-- the fuzzy pairs (0.3 s at 1M customers); every other star is unchanged, as none of its records
-- changed. It writes only where a recomputed star differs from the one stored, per key hash and
-- record (strategy replace_marked: a batch row deletes the stored edges of its key hash and
-- record; deletion rows, with no linked record, are not inserted). Stars are found, compared and
-- replaced by the hash, so two keys of one hash are recomputed together. Built whole, this model
-- cost the daily run 15.6 s at 1M customers: the keys of all 19M records grouped and 32M edges
-- written, for the 0.5M records a week writes.
-- Everything is recomputed when every record was written since (a rebuild of the records after
-- source rows went) or when a record on an edge is gone (an erasure deletes records, not edges):
-- then every stored star is compared, and the stale ones deleted.
{{ config(
    materialized=fact_materialization(),
    incremental_strategy='replace_marked',
    marked_partitioned_by='key_hash',
    marked_by='record_id',
    inserted_when='linked_record_id is not null',
    on_schema_change='sync_all_columns',
    pre_hook="{% if is_incremental() and not identity_state_readable(['key_hash', 'built_at']) %}delete from {{ this }}{% else %}select 1{% endif %}",
) }}
{%- set state = is_incremental() and identity_state_readable(['key_hash', 'built_at']) %}
{%- set fuzzy_hash = identity_hash("'fuzzy_name_dob_postcode'") %}
with
{% if state %}
-- The records written since the last build: int_identity_records_unioned stamps each row it
-- writes with its build's time, shared by this model when both run in one invocation.
written as (
    select record_id from {{ ref('int_identity_records_unioned') }}
    where built_at > {{ latest_in_this('built_at') }}
),

everything as (
    select
        (select count(*) from written) = (select count(*) from {{ ref('int_identity_records_unioned') }})
        or exists (
            select 1 from {{ this }} e
            where not exists (select 1 from {{ ref('int_identity_records_unioned') }} r where r.record_id = e.record_id)
        ) as flag
),

-- The key hashes whose stars are recomputed: the written records' keys now, the keys their
-- edges hold (a key a record no longer holds), the fuzzy pairs'; every star there is when
-- everything is recomputed.
affected as (
    select {{ identity_hash('link_key') }} as key_hash, split_part(link_key, ':', 1) as key_kind
    from (
        select {{ explode_list('link_keys') }} as link_key
        from {{ ref('int_identity_records_unioned') }}
        where record_id in (select record_id from written) or (select flag from everything)
    )
    union
    select key_hash, key_kind from {{ this }}
    where record_id in (select record_id from written) or (select flag from everything)
    union
    select {{ fuzzy_hash }}, cast(null as {{ string_type() }})
),
{% endif %}

record_keys as (
    select *
    from (
        select record_id, link_key, {{ identity_hash('link_key') }} as key_hash
        from (
            select record_id, {{ explode_list('link_keys') }} as link_key
            from {{ ref('int_identity_records_unioned') }}
        )
    )
    {% if state %}
    where key_hash in (select key_hash from affected)
    {% endif %}
),

-- One pass over the key strings: each shared key's records come out as a list of integers.
-- min < max rather than a count: a record never holds one key twice, but this stays right if one did.
shared_keys as (
    select
        split_part(link_key, ':', 1) as key_kind,
        min(key_hash) as key_hash,
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
        key_kind,
        key_hash
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
        cast(null as {{ string_type() }}) as key_kind,
        {{ fuzzy_hash }} as key_hash
    from crm a
    join crm b
      on a.postcode = b.postcode
     and a.birth_date = b.birth_date
     and a.record_node < b.record_node
    where {{ jaro_winkler('a.name_key', 'b.name_key') }} >= {{ var('fuzzy_name_threshold') }}
),

edges as (
    select * from key_edges
    union all
    select * from fuzzy_edges
),

{% if state %}
-- The recomputed stars' edges as the last build left them.
previous as (
    select record_id, linked_record_id, edge_kind, key_kind, key_hash
    from {{ this }}
    where key_hash in (select key_hash from affected)
),

-- Where a recomputed star differs, by (key hash, record): an edge new, gone or changed. Most stars
-- a week touches only grew (a buyer's new order joins their email's star): their other edges are
-- not written again (at 100k customers, 740k edges in the stars recomputed, of 3.3M).
differing as (
    select key_hash, record_id, key_kind from (select * from edges except select * from previous)
    union
    select key_hash, record_id, key_kind from (select * from previous except select * from edges)
),

final as (
    -- A differing pair's edges now (strategy replace_marked: its old edges are deleted first)...
    select e.*, {{ build_time() }} as built_at
    from edges e
    where exists (select 1 from differing d where d.key_hash = e.key_hash and d.record_id = e.record_id)
    union all
    -- ...and a deletion row for it (no linked record: deletes, is not inserted), with the kind of
    -- its key for whoever reads the batch.
    select record_id, cast(null as bigint), cast(null as {{ string_type() }}), key_kind, key_hash, {{ build_time() }}
    from differing
)
{% else %}
final as (
    select *, {{ build_time() }} as built_at from edges
)
{% endif %}

select * from final
