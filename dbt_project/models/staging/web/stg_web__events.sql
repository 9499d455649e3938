with source as (
    select * from {{ source('raw', 'web_events') }}
),

final as (
    select
        event_id,
        occurred_at,
        session_id,
        device_id,
        nullif(trim(user_id), '') as account_id,
        lower(trim(event_type)) as event_type,
        nullif(trim(product_id), '') as product_id,
        search_query,
        lower(trim(channel)) as channel,
        nullif(trim(order_id), '') as order_id,
        _loaded_at
    from source
)

select * from final
