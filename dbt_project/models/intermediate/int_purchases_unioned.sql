-- Every purchase (web/app order or store receipt) with its customer, one row per purchase:
-- int_purchases_recorded joined to the identity on every run, so purchases follow identity
-- changes without the facts being read again. Cancelled orders are not purchases; anonymous
-- walk-in receipts belong to no known customer.
with purchases as (
    select * from {{ ref('int_purchases_recorded') }}
),

identity as (
    select * from {{ ref('int_identity_records_matched') }}
),

final as (
    select
        p.purchase_id,
        i.customer_id,
        p.channel,
        p.purchased_at,
        p.amount,
        p.payment_method,
        p.used_promo
    from purchases p
    join identity i on i.source = p.source and i.source_record_id = p.source_record_id
    where not p.is_cancelled
        and (p.source = 'ecommerce_orders' or not i.is_anonymous)
)

select * from final
