-- Per product category: the share of (customer, product) pairs bought on two or more purchases,
-- logged with every recommender (and, with learn_repurchase_categories, choosing which
-- categories may show an already-bought product again).
{{ config(materialized='view') }}

with purchase_lines as (
    select * from {{ ref('int_purchase_lines_unioned') }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

pairs as (
    select customer_id, product_id, count(distinct purchase_id) as purchases
    from purchase_lines
    where customer_id is not null
    group by customer_id, product_id
),

final as (
    select p.category, count(*) as pairs, avg(cast(purchases >= 2 as double)) as repurchase_rate
    from pairs
    join products p using (product_id)
    group by p.category
)

select * from final
