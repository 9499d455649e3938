-- Every identity-bearing record of every source, with the keys it can be linked by.
-- Keys are pseudonyms (HMAC) or system ids, prefixed by their kind so kinds never collide.
-- Records are numbered here: the graph work downstream joins and groups these integers, never
-- the ~70-character node and key strings. A record keeps its number from build to build (new
-- records are numbered after the largest), so int_identity_components_resolved can keep its
-- component state by number and recompute only what new records touch.
{%- set previous = identity_previous_build(['record_id', 'record_node']) %}
with crm as (
    select * from {{ ref('stg_crm__customers') }}
),

orders as (
    select * from {{ ref('stg_ecommerce__orders') }}
),

-- The clickstream as visits (one row per device, visit and account): a seventh of the events.
visits as (
    select * from {{ ref('int_device_visits_summarised') }}
),

pos as (
    select * from {{ ref('stg_pos__transaction_lines') }}
),

tickets as (
    select * from {{ ref('stg_service__tickets') }}
),

reviews as (
    select * from {{ ref('stg_reviews__product_reviews') }}
),

consent as (
    select * from {{ ref('stg_consent__consent_events') }}
),

crm_records as (
    select
        'crm_customers' as source,
        customer_ref as source_record_id,
        {{ dbt.array_construct(["'crm:' || customer_ref", "'email:' || email_hash", "'phone:' || phone_hash", "'loyalty:' || loyalty_card_hash"]) }} as link_keys,
        name_key,
        birth_date,
        postcode
    from crm
),

order_records as (
    select
        'ecommerce_orders' as source,
        order_id as source_record_id,
        {{ dbt.array_construct(["'account:' || account_id", "'email:' || email_hash", "'phone:' || phone_hash"]) }} as link_keys
    from orders
),

-- The device, not the event, is the identity record of clickstream: a login ties it to an account.
device_records as (
    select
        'web_events' as source,
        device_id as source_record_id,
        {{ sorted_set_agg("'account:' || account_id", 'account_id is not null') }} as link_keys
    from visits
    group by device_id
),

receipt_records as (
    select
        'pos_transactions' as source,
        transaction_id as source_record_id,
        {{ dbt.array_construct(["'loyalty:' || " ~ any_value_of('loyalty_card_hash'), "'phone:' || " ~ any_value_of('phone_hash')]) }} as link_keys
    from pos
    group by transaction_id
),

ticket_records as (
    select 'service_tickets' as source, ticket_id as source_record_id,
        {{ dbt.array_construct(["'email:' || email_hash", "'phone:' || phone_hash"]) }} as link_keys
    from tickets
),

review_records as (
    select 'product_reviews' as source, review_id as source_record_id,
        {{ dbt.array_construct(["'account:' || account_id"]) }} as link_keys
    from reviews
),

consent_records as (
    select 'marketing_consent' as source, consent_event_id as source_record_id,
        {{ dbt.array_construct(["'crm:' || customer_ref"]) }} as link_keys
    from consent
),

unioned as (
    select source, source_record_id, link_keys, name_key, birth_date, postcode from crm_records
    {% for records in ['order_records', 'device_records', 'receipt_records', 'ticket_records', 'review_records', 'consent_records'] %}
    union all select source, source_record_id, link_keys, null, null, null from {{ records }}
    {% endfor %}
),

{% if previous %}
numbered as (
    select p.record_id, u.*
    from unioned u
    left join (select record_id, record_node from {{ previous }}) p
      on p.record_node = u.source || ':' || u.source_record_id
),

-- Only the new records are sorted (by node, so their numbers do not depend on scan order).
numbers as (
    select * from numbered where record_id is not null
    union all
    select
        (select coalesce(max(record_id), 0) from {{ previous }})
            + row_number() over (order by source, source_record_id) as record_id,
        * exclude (record_id)
    from numbered
    where record_id is null
),
{% else %}
numbers as (
    select {{ unordered_row_number() }} as record_id, * from unioned
),
{% endif %}

final as (
    select
        record_id,
        source,
        source_record_id,
        source || ':' || source_record_id as record_node,
        {{ list_compact('link_keys') }} as link_keys,
        name_key,
        birth_date,
        postcode
    from numbers
)

select * from final
