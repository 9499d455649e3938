with source as (
    select * from {{ source('raw', 'ecommerce_orders') }}
),

final as (
    select
        order_id,
        account_id,
        email_hash,
        phone_hash,
        ordered_at,
        lower(trim(channel)) as channel,
        lower(trim(status)) as status,
        lower(trim(payment_method)) as payment_method,
        nullif(trim(promo_code), '') as promo_code,
        amount,
        coalesce(currency, 'CNY') as currency,
        shipping_postcode,
        _loaded_at
    from source
)

select * from final
