with source as (
    select * from {{ source('raw', 'pos_transactions') }}
),

final as (
    select
        pos_line_id,
        transaction_id,
        line_no,
        store_id,
        occurred_at,
        loyalty_card_hash,
        phone_hash,
        product_id,
        quantity,
        unit_price,
        quantity * unit_price as line_amount,
        lower(trim(payment_method)) as payment_method,
        nullif(trim(promo_code), '') as promo_code,
        _loaded_at
    from source
)

select * from final
