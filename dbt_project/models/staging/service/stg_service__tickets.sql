with source as (
    select * from {{ source('raw', 'service_tickets') }}
),

final as (
    select
        ticket_id,
        opened_at,
        closed_at,
        lower(trim(channel)) as channel,
        email_hash,
        phone_hash,
        lower(trim(category)) as category,
        text as ticket_text,
        lower(trim(resolution)) as resolution,
        closed_at is null as is_open,
        _loaded_at
    from source
)

select * from final
