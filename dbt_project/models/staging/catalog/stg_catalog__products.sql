with source as (
    select * from {{ source('raw', 'products') }}
),

final as (
    select
        product_id,
        trim(product_name) as product_name,
        lower(trim(category)) as category,
        trim(brand) as brand,
        price,
        launched_at,
        coalesce(discontinued, false) as is_discontinued
    from source
)

select * from final
