-- Weekly units per product category on a full category x week grid (weeks without sales are 0),
-- the demand forecast's history. Only whole weeks count: the partial first and last weeks of the
-- data would look like slumps. Weeks start on Monday.
{{ config(materialized='view') }}

with purchase_lines as (
    select * from {{ ref('int_purchase_lines_unioned') }}
),

lines as (
    select coalesce(category, 'uncategorised') as category, cast(purchased_at as date) as day, quantity
    from purchase_lines
),

bounds as (
    select
        cast(date_trunc('week', min(day) + 6) as date) as first_week,
        cast(date_trunc('week', max(day) + 1) as date) - 7 as last_week
    from lines
),

weeks as (
    {{ date_series('bounds', 'first_week', 'last_week', 7, 'week_start') }}
),

categories as (
    select distinct category from lines
),

sold as (
    select category, cast(date_trunc('week', day) as date) as week_start, sum(quantity) as units
    from lines
    group by 1, 2
),

final as (
    select c.category, w.week_start, cast(coalesce(s.units, 0) as double) as units
    from categories c
    cross join weeks w
    left join sold s using (category, week_start)
)

select * from final
