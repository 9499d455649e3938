with source as (
    select * from {{ source('raw', 'product_reviews') }}
),

final as (
    select
        review_id,
        account_id,
        product_id,
        order_id,
        score,
        text as review_text,
        created_at,
        _loaded_at
    from source
)

select * from final
