-- One row per identified customer and catalogue product they touched: purchases (web/app
-- orders and store receipts), add-to-carts and product views, weighted purchase > cart > view.
-- Anonymous customers (devices that never logged in, walk-in receipts) are left out: there is
-- no one to recommend to. Web 'purchase' events are skipped because orders already count them.
{% set purchase_weight = var('rec_weight_purchase', 5.0) %}
{% set cart_weight = var('rec_weight_cart', 2.0) %}
{% set view_weight = var('rec_weight_view', 1.0) %}

with purchase_lines as (
    select * from {{ ref('int_purchase_lines_unioned') }}
),

events as (
    select * from {{ ref('stg_web__events') }}
),

identity as (
    select * from {{ ref('int_identity_records_matched') }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

identified_customers as (
    select distinct customer_id from identity where not is_anonymous
),

purchases as (
    select customer_id, product_id, purchased_at as event_at, 'purchase' as event_type, purchase_id as event_key
    from purchase_lines
),

browsing as (
    select i.customer_id, e.product_id, e.occurred_at as event_at, e.event_type, e.event_id as event_key
    from events e
    join identity i on i.source = 'web_events' and i.source_record_id = e.device_id
    where e.event_type in ('product_view', 'add_to_cart') and e.product_id is not null
),

touches as (
    select t.*
    from (select * from purchases union all select * from browsing) t
    join identified_customers using (customer_id)
    join products using (product_id)
),

counted as (
    select
        customer_id,
        product_id,
        -- A basket line split over two rows is still one purchase.
        count(distinct event_key) filter (where event_type = 'purchase') as purchase_count,
        count(*) filter (where event_type = 'add_to_cart') as cart_count,
        count(*) filter (where event_type = 'product_view') as view_count,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at,
        max(event_at) filter (where event_type = 'purchase') as last_purchased_at
    from touches
    group by customer_id, product_id
),

final as (
    select
        customer_id,
        product_id,
        cast(
            {{ purchase_weight }} * purchase_count
            + {{ cart_weight }} * cart_count
            + {{ view_weight }} * view_count
            as double
        ) as weight,
        purchase_count,
        cart_count,
        view_count,
        first_event_at,
        last_event_at,
        last_purchased_at
    from counted
)

select * from final
