{# Each customer's purchase days: a day's purchases (orders, receipts) are one purchase of their
   summed amount, as the BG/NBD and Gamma-Gamma models count them. `purchases` is a relation of
   int_purchases_unioned's shape. #}
{% macro purchase_days(purchases) -%}
    -- Summed as decimals: a parallel sum of doubles can differ in its last bit from one read to
    -- the next, which would rescore customers whose purchases did not change
    -- (orchestration/incremental_scoring.py) and make CLV scores irreproducible.
    select customer_id, cast(purchased_at as date) as day, sum(cast(coalesce(amount, 0) as decimal(38, 10))) as amount
    from {{ purchases }}
    where customer_id is not null
    group by 1, 2
{%- endmacro %}
