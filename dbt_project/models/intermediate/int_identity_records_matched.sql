-- Each record with its customer id and the strongest rule that ties it to another record of
-- the same person (or 'singleton' when nothing does). A customer whose records carry no key
-- at all (a device that never logged in, a walk-in receipt) is anonymous: not a person we know.
with records as (
    select * from {{ ref('int_identity_records_unioned') }}
),

assigned as (
    select * from {{ ref('int_customer_ids_assigned') }}
),

edges as (
    select * from {{ ref('int_identity_edges_linked') }}
),

key_use as (
    select node_b as link_key, count(distinct node_a) as records_sharing
    from edges
    where edge_kind = 'key'
    group by node_b
),

shared_keys as (
    select
        e.node_a as record_node,
        min(case split_part(e.node_b, ':', 1)
            when 'account' then 1 when 'crm' then 2 when 'loyalty' then 3
            when 'email' then 4 when 'phone' then 5 end) as best_rank
    from edges e
    join key_use k on k.link_key = e.node_b and k.records_sharing > 1
    where e.edge_kind = 'key'
    group by e.node_a
),

fuzzy as (
    select node_a as record_node from edges where edge_kind = 'fuzzy_name_dob_postcode'
    union
    select node_b from edges where edge_kind = 'fuzzy_name_dob_postcode'
),

identified as (
    select a.customer_id, bool_or({{ list_size('r.link_keys') }} > 0) as is_identified
    from records r
    join assigned a using (record_node)
    group by a.customer_id
),

final as (
    select
        r.source,
        r.source_record_id,
        a.customer_id,
        case
            when s.best_rank = 1 and r.source = 'web_events' then 'device_login'
            when s.best_rank = 1 then 'account_id'
            when s.best_rank = 2 then 'crm_ref'
            when s.best_rank = 3 then 'loyalty_card'
            when s.best_rank = 4 then 'email'
            when s.best_rank = 5 then 'phone'
            when f.record_node is not null then 'fuzzy_name_dob_postcode'
            else 'singleton'
        end as match_rule,
        not i.is_identified as is_anonymous
    from records r
    join assigned a using (record_node)
    join identified i on i.customer_id = a.customer_id
    left join shared_keys s using (record_node)
    left join fuzzy f using (record_node)
)

select * from final
