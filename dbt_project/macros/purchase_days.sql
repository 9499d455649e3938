{# Each customer's purchase days: a day's purchases (orders, receipts) are one purchase of their
   summed amount, as the BG/NBD and Gamma-Gamma models count them. `purchases` is a relation of
   int_purchases_unioned's shape. #}
{% macro purchase_days(purchases) -%}
    select customer_id, cast(purchased_at as date) as day, sum(coalesce(amount, 0)) as amount
    from {{ purchases }}
    where customer_id is not null
    group by 1, 2
{%- endmacro %}
