-- The CLV promotion metric's data: the summary of every customer who bought before the last
-- var('clv_holdout_days') days of data (their purchases before then only), and the repeat
-- purchase days each made in those held-out days. A refit on the summary predicts the latter.
{{ config(materialized='view') }}
{% set holdout_days = var('clv_holdout_days', 180) | int %}

with purchases as (
    select * from {{ ref('int_purchases_unioned') }}
),

all_days as (
    {{ purchase_days('purchases') }}
),

-- Anonymous purchases count for the end of the data.
bounds as (
    select
        cast(max(purchased_at) as date) + 1 as as_of_date,
        cast(max(purchased_at) as date) + 1 - {{ holdout_days }} as split_date
    from purchases
),

calibration_days as (
    select d.* from all_days d cross join bounds b where d.day < b.split_date
),

calibration as (
    {{ clv_summary('calibration_days', '(select split_date from bounds)') }}
),

held_out as (
    select d.customer_id, count(*) as holdout_purchases
    from all_days d cross join bounds b
    where d.day >= b.split_date and d.day < b.as_of_date
    group by d.customer_id
),

final as (
    select
        c.*,
        coalesce(h.holdout_purchases, 0) as holdout_purchases,
        {{ holdout_days }} as holdout_days,
        b.split_date,
        b.as_of_date
    from calibration c
    cross join bounds b
    left join held_out h using (customer_id)
)

select * from final
