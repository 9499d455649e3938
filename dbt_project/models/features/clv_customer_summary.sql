-- One row per customer with a purchase: the purchase-day summary the CLV model is fitted on and
-- scores (macros/clv_summary.sql). Purchases collapse to purchase days (a day's orders are one
-- purchase of their summed amount); T runs to the as-of date, the day after the last purchase.
{{ config(materialized='view') }}

with purchases as (
    select * from {{ ref('int_purchases_unioned') }}
),

days as (
    {{ purchase_days('purchases') }}
),

-- Anonymous purchases count for the end of the data.
as_of as (
    select cast(max(purchased_at) as date) + 1 as as_of_date from purchases
),

summary as (
    {{ clv_summary('days', '(select as_of_date from as_of)') }}
),

final as (
    select s.*, a.as_of_date from summary s cross join as_of a
)

select * from final
