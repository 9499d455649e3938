{# A source written by a Python asset that may not exist yet (a fresh warehouse, or a model the
   platform does not run): the table when it exists, else an empty relation with the given
   typed columns, so the marts build either way. Dependencies stay declared through source(). #}
{% macro source_or_empty(source_name, table_name, columns) -%}
    {%- set relation = source(source_name, table_name) -%}
    {#- A unit test's fixture stands in for the source as a CTE: no schema or database to look up. -#}
    {%- set fixture = execute and not (relation.schema and relation.database) -%}
    {%- set found = execute and not fixture and relation.identifier and adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier) -%}
    {%- if found or fixture -%}
        {{ relation }}
    {%- else -%}
        (select {% for name, type in columns.items() %}cast(null as {{ portable_type(type) }}) as {{ name }}{{ ', ' if not loop.last }}{% endfor %} where false)
    {%- endif -%}
{%- endmacro %}
