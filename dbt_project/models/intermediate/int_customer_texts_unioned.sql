-- Every free text a customer wrote to us, one row per review or ticket, with the person it
-- belongs to: the input of the sentiment model (ml/text_sentiment). Reviews carry stars,
-- tickets do not.
with reviews as (
    select * from {{ ref('stg_reviews__product_reviews') }}
),

tickets as (
    select * from {{ ref('stg_service__tickets') }}
),

identity as (
    select * from {{ ref('int_identity_records_matched') }}
),

review_texts as (
    select
        'product_reviews' as source,
        r.review_id as record_id,
        i.customer_id,
        r.review_text as text,
        r.score as stars,
        r.created_at as written_at
    from reviews r
    left join identity i on i.source = 'product_reviews' and i.source_record_id = r.review_id
),

ticket_texts as (
    select
        'service_tickets' as source,
        t.ticket_id as record_id,
        i.customer_id,
        t.ticket_text as text,
        cast(null as integer) as stars,
        t.opened_at as written_at
    from tickets t
    left join identity i on i.source = 'service_tickets' and i.source_record_id = t.ticket_id
),

final as (
    select * from review_texts
    union all
    select * from ticket_texts
)

select * from final
