-- Each record with its customer id and the strongest rule that ties it to another record of
-- the same person (or 'singleton' when nothing does). A customer whose records carry no key
-- at all (a device that never logged in, a walk-in receipt) is anonymous: not a person we know.
-- The edges are read by name where used, not through a CTE: DuckDB materialises a CTE read more
-- than once, and all of them were copied for three reads of a column or two (21.3 -> 18.3 s alone
-- at L).
--
-- On DuckDB a build continues from the last one, as an incremental model (delete+insert on
-- record_id). It computes the records int_identity_components_resolved wrote since (`resolved_at`
-- after the latest one here) and the records they have an edge with; every other row stays as it
-- is. Nothing else can change: a record's rule reads its own edges, which change only when it or
-- a record it shares a key with is new or changed (a new record's key edge goes to the key's
-- first record, which may have held it alone until then); ids and anonymity are per component,
-- and a component of which only new records were written kept its id and had keys before. A
-- record recomputed for its edge keeps its `resolved_at`: its person did not change. Records that
-- are gone (no component) are deleted by the post-hook; a renumbering rewrites every component,
-- so every row. It was a table rewritten each run, the unchanged rows copied, while a week's new
-- data touched a quarter of the records; since components that only grew write just their new
-- records, a week at 1M customers recomputes 792k of 19.2M rows, and the copy cost 8 s of thread
-- time (a join, a scan and the write of 18.7M rows) on the daily run's longest path.
{{ config(
    materialized=fact_materialization(),
    unique_key='record_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook="{{ delete_vanished_records(ref('int_identity_components_resolved')) }}",
) }}
{%- set previous = identity_previous_build(['record_id', 'resolved_at', 'source', 'source_record_id', 'customer_id', 'match_rule', 'is_anonymous']) if is_incremental() else none %}
{%- if previous %}
{%- set since = "(select coalesce(max(resolved_at), cast('1900-01-01' as timestamp)) from " ~ previous ~ ")" %}
{%- endif %}
{% set edges = ref('int_identity_edges_linked') %}

with
{% if previous %}
-- The records written since, and those sharing an edge with one, either way (a fuzzy edge runs
-- from the record with the smaller node, new or old).
written as (
    select record_id from {{ ref('int_identity_components_resolved') }} where resolved_at > {{ since }}
),

scope as (
    select record_id from written
    union
    select linked_record_id from {{ edges }} where record_id in (select record_id from written)
    union
    select record_id from {{ edges }} where linked_record_id in (select record_id from written)
),
{% endif %}

-- The records in scope, each with when its component was resolved.
records as (
    select r.*, c.resolved_at
    from {{ ref('int_identity_records_unioned') }} r
    join {{ ref('int_identity_components_resolved') }} c using (record_id)
    {% if previous %}
    where record_id in (select record_id from scope)
    {% endif %}
),

assigned as (
    select * from {{ ref('int_customer_ids_assigned') }}
),

-- Every key edge is a key some other record shares too.
shared_keys as (
    select
        record_id,
        min(case key_kind
            when 'account' then 1 when 'crm' then 2 when 'loyalty' then 3
            when 'email' then 4 when 'phone' then 5 end) as best_rank
    from {{ edges }}
    where edge_kind = 'key' {% if previous %}and record_id in (select record_id from records){% endif %}
    group by record_id
),

fuzzy as (
    select record_id from {{ edges }} where edge_kind = 'fuzzy_name_dob_postcode'
    union
    select linked_record_id from {{ edges }} where edge_kind = 'fuzzy_name_dob_postcode'
),

record_customers as (
    select r.record_id, r.source, r.source_record_id, a.customer_id, {{ list_size('r.link_keys') }} > 0 as has_keys, r.resolved_at
    from records r
    join assigned a using (record_node)
),

identified as (
    select customer_id, bool_or(has_keys) as is_identified
    from record_customers
    group by customer_id
),

final as (
    select
        r.source,
        r.source_record_id,
        r.customer_id,
        case
            when s.best_rank = 1 and r.source = 'web_events' then 'device_login'
            when s.best_rank = 1 then 'account_id'
            when s.best_rank = 2 then 'crm_ref'
            when s.best_rank = 3 then 'loyalty_card'
            when s.best_rank = 4 then 'email'
            when s.best_rank = 5 then 'phone'
            when f.record_id is not null then 'fuzzy_name_dob_postcode'
            else 'singleton'
        end as match_rule,
        not i.is_identified as is_anonymous,
        r.record_id,
        r.resolved_at
    from record_customers r
    join identified i on i.customer_id = r.customer_id
    left join shared_keys s on s.record_id = r.record_id
    left join fuzzy f on f.record_id = r.record_id
)

select * from final

