-- Every purchase (web/app order or store receipt) with its customer, one row per purchase.
-- Cancelled orders are not purchases; anonymous walk-in receipts belong to no known customer.
with orders as (
    select * from {{ ref('stg_ecommerce__orders') }}
),

pos as (
    select * from {{ ref('stg_pos__transaction_lines') }}
),

identity as (
    select * from {{ ref('int_identity_records_matched') }}
),

online as (
    select
        'order:' || o.order_id as purchase_id,
        i.customer_id,
        o.channel,
        o.ordered_at as purchased_at,
        o.amount,
        o.payment_method,
        o.promo_code is not null as used_promo
    from orders o
    join identity i on i.source = 'ecommerce_orders' and i.source_record_id = o.order_id
    where o.status not in ('cancelled')
),

receipts as (
    select
        transaction_id,
        min(occurred_at) as purchased_at,
        sum(line_amount) as amount,
        {{ any_value_of('payment_method') }} as payment_method,
        bool_or(promo_code is not null) as used_promo
    from pos
    group by transaction_id
),

in_store as (
    select
        'pos:' || r.transaction_id as purchase_id,
        i.customer_id,
        'store' as channel,
        r.purchased_at,
        r.amount,
        r.payment_method,
        r.used_promo
    from receipts r
    join identity i on i.source = 'pos_transactions' and i.source_record_id = r.transaction_id
    where not i.is_anonymous
),

final as (
    select * from online
    union all
    select * from in_store
)

select * from final
