{# A person's name as compared across systems: lower-case ASCII letters, Wade-Giles and other
   romanisations mapped to pinyin (Chang -> zhang), tokens sorted so "Wei Zhang" and
   "zhang  wei" agree. #}
{% macro name_transliterations() -%}
    {{ return({
    'chang': 'zhang', 'hsu': 'xu', 'chou': 'zhou', 'chien': 'qian', 'hsieh': 'xie', 'kuo': 'guo',
    'tsai': 'cai', 'tseng': 'zeng', 'chao': 'zhao', 'liou': 'liu', 'lee': 'li', 'wong': 'wang',
    'hwang': 'huang', 'tsao': 'cao', 'teng': 'deng', 'chiang': 'jiang', 'ho': 'he', 'lo': 'luo'
    }) }}
{%- endmacro %}

{% macro normalise_name(first, last) -%}
    {{ return(adapter.dispatch('normalise_name', 'customer_360')(first, last)) }}
{%- endmacro %}

{% macro duckdb__normalise_name(first, last) -%}
    {%- set transliterations = name_transliterations() -%}
    array_to_string(list_sort(list_transform(
        regexp_split_to_array(trim(regexp_replace(lower(coalesce({{ first }}, '') || ' ' || coalesce({{ last }}, '')), '[^a-z ]', '', 'g')), '\s+'),
        lambda t: case t {% for variant, pinyin in transliterations.items() %}when '{{ variant }}' then '{{ pinyin }}' {% endfor %}else t end
    )), ' ')
{%- endmacro %}

{# Spark: the same steps; string literals there unescape backslashes, hence '\\s+'. #}
{% macro default__normalise_name(first, last) -%}
    {%- set transliterations = name_transliterations() -%}
    array_join(array_sort(transform(
        split(trim(regexp_replace(lower(coalesce({{ first }}, '') || ' ' || coalesce({{ last }}, '')), '[^a-z ]', '')), '\\s+'),
        t -> case t {% for variant, pinyin in transliterations.items() %}when '{{ variant }}' then '{{ pinyin }}' {% endfor %}else t end
    )), ' ')
{%- endmacro %}

{# The reference date for RFM, tags and features: var('as_of_date') or the day after the
   latest purchase in the data; today when there is no purchase at all (a landing of CRM records
   alone: a null date failed churn_features' not-null test and left every date-relative column
   empty). #}
{% macro as_of_date() -%}
    {%- if var('as_of_date') -%} date '{{ var("as_of_date") }}'
    {%- else -%} coalesce((select cast(max(purchased_at) as date) + 1 from {{ ref('int_purchases_unioned') }}), current_date)
    {%- endif -%}
{%- endmacro %}
