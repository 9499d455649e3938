-- One row per touch (purchase, add-to-cart, product view) of the (customer, product) pairs the
-- recommender trains on (int_interactions_weighted): joining back to them keeps the same
-- customers and products. Feeds the next-item transitions and the temporal evaluation. A view:
-- ~80M rows at 1M customers, read only when the recommender trains.
{{ config(materialized='view') }}

with interactions as (
    select customer_id, product_id from {{ ref('int_interactions_weighted') }}
),

purchase_lines as (
    select * from {{ ref('int_purchase_lines_unioned') }}
),

events as (
    select * from {{ ref('stg_web__events') }}
),

identity as (
    select * from {{ ref('int_identity_records_matched') }}
),

touches as (
    select customer_id, product_id, purchased_at as event_time, 'purchase' as event_type
    from purchase_lines
    union all
    select i.customer_id, e.product_id, e.occurred_at as event_time, e.event_type
    from events e
    join identity i on i.source = 'web_events' and i.source_record_id = e.device_id
    where e.event_type in ('product_view', 'add_to_cart')
),

final as (
    select
        t.customer_id,
        t.product_id,
        t.event_time,
        t.event_type,
        case t.event_type
            when 'purchase' then {{ var('rec_weight_purchase', 5.0) }}
            when 'add_to_cart' then {{ var('rec_weight_cart', 2.0) }}
            else {{ var('rec_weight_view', 1.0) }}
        end as weight
    from touches t
    join interactions using (customer_id, product_id)
)

select * from final
