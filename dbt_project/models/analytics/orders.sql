-- Web and app orders by person, without the contact pseudonyms the staging model carries.
with orders as (
    select * from {{ ref('stg_ecommerce__orders') }}
),

identity as (
    select * from {{ ref('identity_map') }}
    where source = 'ecommerce_orders'
),

final as (
    select
        orders.order_id,
        identity.customer_id,
        orders.ordered_at,
        orders.channel,
        orders.status,
        orders.payment_method,
        orders.amount,
        orders.currency
    from orders
    left join identity on identity.source_record_id = orders.order_id
)

select * from final
