-- What an analyst may see of a person: the profile with contact details masked and the bank
-- card reduced to its last four digits. No pseudonyms (*_hash) and no tokens (*_enc).
with profiles as (
    select * from {{ ref('customer_360') }}
),

identity as (
    select * from {{ ref('identity_map') }}
    where source = 'crm_customers'
),

crm as (
    select * from {{ ref('stg_crm__customers') }}
),

cards as (
    select
        identity.customer_id,
        {{ arg_max_of('crm.bank_card_masked', ['crm.updated_at', 'crm.customer_ref']) }} filter (where crm.bank_card_masked is not null) as bank_card_masked
    from identity
    join crm on crm.customer_ref = identity.source_record_id
    group by identity.customer_id
),

final as (
    select
        profiles.customer_id,
        profiles.gender,
        profiles.age_band,
        profiles.city,
        profiles.region,
        profiles.signup_channel,
        profiles.signup_date,
        profiles.email_masked,
        profiles.phone_masked,
        cards.bank_card_masked,
        right(cards.bank_card_masked, 4) as bank_card_last4,
        profiles.orders_total,
        profiles.revenue,
        profiles.rfm_segment,
        profiles.clv_tier,
        profiles.consent_email,
        profiles.consent_sms,
        profiles.consent_push,
        profiles.consent_phone
    from profiles
    left join cards using (customer_id)
)

select * from final
