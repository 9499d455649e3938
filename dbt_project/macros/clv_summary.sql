{# The BG/NBD / Gamma-Gamma summary of each customer's purchase days before `as_of`: repeat
   purchase days (frequency), days from the first to the last purchase day (recency_days), days
   from the first purchase day to `as_of` (t_days) and the mean spend per repeat day. `days` is a
   relation of (customer_id, day, amount), a day's purchases summed into one. #}
{% macro clv_summary(days, as_of) -%}
    select
        customer_id,
        count(*) filter (where day > first_day) as frequency,
        {{ days_between('min(day)', 'max(day)') }} as recency_days,
        {{ days_between('min(first_day)', as_of) }} as t_days,
        cast(coalesce(avg(amount) filter (where day > first_day), 0) as double) as monetary_value
    from (select *, min(day) over (partition by customer_id) as first_day from {{ days }}) firsts
    group by customer_id
{%- endmacro %}
