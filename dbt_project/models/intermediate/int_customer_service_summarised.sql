-- Each customer's service history, one row per customer with a ticket: tickets, complaints
-- (tickets in the 'complaint' category), what is still open, and the last contact. "Recent"
-- is the 90 days before the as-of date.
with tickets as (
    select * from {{ ref('stg_service__tickets') }}
),

identity as (
    select * from {{ ref('int_identity_records_matched') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

matched as (
    select i.customer_id, t.*
    from tickets t
    join identity i on i.source = 'service_tickets' and i.source_record_id = t.ticket_id
    where not i.is_anonymous
),

final as (
    select
        m.customer_id,
        count(*) as tickets,
        count(*) filter (where m.is_open) as open_tickets,
        count(*) filter (where m.category = 'complaint') as complaints,
        count(*) filter (where m.category = 'complaint' and m.is_open) as open_complaints,
        count(*) filter (where m.category = 'complaint' and m.opened_at >= a.as_of_date - interval 90 days)
            as complaints_90d,
        count(*) filter (where m.opened_at >= a.as_of_date - interval 90 days) as tickets_90d,
        max(greatest(m.opened_at, m.closed_at)) as last_contact_at
    from matched m
    cross join as_of a
    group by m.customer_id
)

select * from final
