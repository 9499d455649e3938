-- Current marketing consent per customer and channel: the latest decision wins, whatever the
-- order the events arrived in. Several CRM records of one person are merged; no event for a
-- channel means no consent (no consent, no marketing).
with consent as (
    select * from {{ ref('stg_consent__consent_events') }}
),

identity as (
    select * from {{ ref('int_identity_records_matched') }}
),

crm_identity as (
    select source_record_id as customer_ref, customer_id
    from identity
    where source = 'crm_customers'
),

events as (
    select c.customer_id, e.channel, e.granted, e.occurred_at, e.consent_event_id
    from consent e
    join crm_identity c using (customer_ref)
),

final as (
    select
        customer_id,
        channel,
        {{ arg_max_of('granted', ['occurred_at', 'consent_event_id']) }} as granted,
        max(occurred_at) as decided_at
    from events
    group by customer_id, channel
)

select * from final
