-- Each record with its customer id and the strongest rule that ties it to another record of
-- the same person (or 'singleton' when nothing does). A customer whose records carry no key
-- at all (a device that never logged in, a walk-in receipt) is anonymous: not a person we know.
-- The edges are read by name where used, not through a CTE: DuckDB materialises a CTE read more
-- than once, and all of them were copied for three reads of a column or two (21.3 -> 18.3 s alone
-- at L).
{% set edges = ref('int_identity_edges_linked') %}

with records as (
    select * from {{ ref('int_identity_records_unioned') }}
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
    where edge_kind = 'key'
    group by record_id
),

fuzzy as (
    select record_id from {{ edges }} where edge_kind = 'fuzzy_name_dob_postcode'
    union
    select linked_record_id from {{ edges }} where edge_kind = 'fuzzy_name_dob_postcode'
),

record_customers as (
    select r.record_id, r.source, r.source_record_id, a.customer_id, {{ list_size('r.link_keys') }} > 0 as has_keys
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
        not i.is_identified as is_anonymous
    from record_customers r
    join identified i on i.customer_id = r.customer_id
    left join shared_keys s on s.record_id = r.record_id
    left join fuzzy f on f.record_id = r.record_id
)

select * from final
