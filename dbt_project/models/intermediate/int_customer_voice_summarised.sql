-- What each customer says, one row per customer with a review or a ticket: reviews, average
-- stars, and the average sentiment of their texts (ml.text_sentiment; null until the
-- sentiment model has run).
with texts as (
    select * from {{ ref('int_customer_texts_unioned') }}
),

sentiment as (
    select * from {{ source_or_empty('ml', 'text_sentiment', {
        'source': 'varchar', 'record_id': 'varchar', 'customer_id': 'varchar',
        'sentiment': 'double', 'label': 'varchar'}) }}
),

scored as (
    select t.*, s.sentiment, s.label
    from texts t
    left join sentiment s using (source, record_id)
    where t.customer_id is not null
),

final as (
    select
        customer_id,
        count(*) filter (where source = 'product_reviews') as reviews,
        round(avg(stars) filter (where source = 'product_reviews'), 2) as avg_review_score,
        round(avg(sentiment), 3) as avg_sentiment,
        round(avg(sentiment) filter (where source = 'product_reviews'), 3) as avg_review_sentiment,
        round(avg(sentiment) filter (where source = 'service_tickets'), 3) as avg_ticket_sentiment,
        count(*) filter (where label = 'negative') as negative_texts,
        max(written_at) filter (where source = 'product_reviews') as last_review_at
    from scored
    group by customer_id
)

select * from final
