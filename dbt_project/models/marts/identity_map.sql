with matched as (
    select * from {{ ref('int_identity_records_matched') }}
),

final as (
    select source, source_record_id, customer_id, match_rule
    from matched
)

select * from final
