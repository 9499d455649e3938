with source as (
    select * from {{ source('raw', 'ecommerce_order_items') }}
),

final as (
    select
        order_item_id,
        order_id,
        line_no,
        product_id,
        quantity,
        unit_price,
        coalesce(discount, 0) as discount,
        quantity * unit_price - coalesce(discount, 0) as line_amount,
        _loaded_at
    from source
)

select * from final
