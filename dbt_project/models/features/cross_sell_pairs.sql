-- Product pairs bought in the same basket, with support, confidence and lift: the candidates of
-- ml.cross_sell_rules (whose thresholds are the asset's config). Baskets are orders that were not
-- cancelled and store receipts, each product once per basket; anonymous ones count too (rules
-- are aggregates). Pair counts come from a self-join of the basket lines, so memory grows with
-- pairs, not baskets squared. A view: computed when the rules are, with their thresholds.
{{ config(materialized='view') }}

with orders as (
    select * from {{ ref('stg_ecommerce__orders') }}
),

order_items as (
    select * from {{ ref('stg_ecommerce__order_items') }}
),

pos_lines as (
    select * from {{ ref('stg_pos__transaction_lines') }}
),

baskets as (
    select distinct 'order:' || i.order_id as basket_id, i.product_id
    from order_items i
    join orders o using (order_id)
    where o.status not in ('cancelled')
    union
    select distinct 'pos:' || transaction_id as basket_id, product_id
    from pos_lines
),

totals as (
    select cast(count(distinct basket_id) as double) as n from baskets
),

item_counts as (
    select product_id, count(*) as baskets from baskets group by product_id
),

pair_counts as (
    select a.product_id as antecedent, b.product_id as consequent, count(*) as baskets
    from baskets a
    join baskets b on a.basket_id = b.basket_id and a.product_id <> b.product_id
    group by a.product_id, b.product_id
),

final as (
    select
        p.antecedent,
        p.consequent,
        p.baskets,
        p.baskets / t.n as support,
        p.baskets / cast(ia.baskets as double) as confidence,
        (p.baskets / cast(ia.baskets as double)) / (ic.baskets / t.n) as lift
    from pair_counts p
    cross join totals t
    join item_counts ia on ia.product_id = p.antecedent
    join item_counts ic on ic.product_id = p.consequent
)

select * from final
