-- Every purchased product line with its customer and category (orders and store receipts).
with items as (
    select * from {{ ref('stg_ecommerce__order_items') }}
),

pos as (
    select * from {{ ref('stg_pos__transaction_lines') }}
),

purchases as (
    select * from {{ ref('int_purchases_unioned') }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

lines as (
    select 'order:' || order_id as purchase_id, product_id, quantity, line_amount from items
    union all
    select 'pos:' || transaction_id, product_id, quantity, line_amount from pos
),

final as (
    select
        p.customer_id,
        l.purchase_id,
        p.purchased_at,
        p.channel,
        l.product_id,
        pr.category,
        l.quantity,
        l.line_amount
    from lines l
    join purchases p using (purchase_id)
    left join products pr using (product_id)
)

select * from final
