with source as (
    select * from {{ source('raw', 'marketing_consent') }}
),

final as (
    select
        consent_event_id,
        customer_ref,
        lower(trim(channel)) as channel,
        granted,
        occurred_at,
        lower(trim(source)) as capture_source,
        _loaded_at
    from source
)

select * from final
