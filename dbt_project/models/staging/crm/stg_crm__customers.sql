with source as (
    select * from {{ source('raw', 'crm_customers') }}
),

final as (
    select
        customer_ref,
        trim(first_name) as first_name,
        trim(last_name) as last_name,
        {{ normalise_name('first_name', 'last_name') }} as name_key,
        email_hash,
        email_masked,
        phone_hash,
        phone_masked,
        right(phone_masked, 4) as phone_last4,
        loyalty_card_hash,
        birth_date,
        case upper(trim(gender)) when 'F' then 'F' when 'M' then 'M' else 'U' end as gender,
        trim(city) as city,
        trim(region) as region,
        trim(postcode) as postcode,
        signup_date,
        lower(trim(signup_channel)) as signup_channel,
        national_id_enc,
        national_id_masked,
        bank_card_hash,
        bank_card_enc,
        bank_card_masked,
        updated_at,
        _source_file,
        _loaded_at
    from source
)

select * from final
