{# A person's name as compared across systems: lower-case ASCII letters, Wade-Giles spellings
   mapped to pinyin (Chang -> zhang), tokens sorted so "Wei Zhang" and "zhang  wei" agree. #}
{% macro normalise_name(first, last) -%}
    array_to_string(list_sort(list_transform(
        regexp_split_to_array(trim(regexp_replace(lower(coalesce({{ first }}, '') || ' ' || coalesce({{ last }}, '')), '[^a-z ]', '', 'g')), '\s+'),
        t -> coalesce(map_extract_value(
            (select map(list(variant), list(pinyin)) from {{ ref('name_transliterations') }}), t), t)
    )), ' ')
{%- endmacro %}

{# The reference date for RFM, tags and features: var('as_of_date') or the day after the
   latest purchase in the data. #}
{% macro as_of_date() -%}
    {%- if var('as_of_date') -%} date '{{ var("as_of_date") }}'
    {%- else -%} (select cast(max(purchased_at) as date) + 1 from {{ ref('int_purchases_unioned') }})
    {%- endif -%}
{%- endmacro %}
