{# No two rows share the values of `columns` (column names or expressions). Grouped by the
   columns themselves: the unique tests on `a || '|' || b` built a string for every row first,
   1.5-1.7x the time at 1M customers (int_device_products_touched, 28.9M rows: 6.1 -> 3.7 s).
   Rows with a null in any column are left out, as the concatenation left them out (it is null
   then); unlike it, 'a|b' + 'c' and 'a' + 'b|c' are two keys.

   `latest_build`, for an incremental fact: the column saying when a row was written
   (`built_at`, one value per build). Where the facts are incremental (fact_materialization()) and
   the latest build did not write every row, only the keys it wrote are grouped, with every row
   holding them. The table was unique after the build before (its own test), so a duplicate now
   holds a row written since: a daily run checks the rows it wrote, not the whole table, which
   grouped every key again (at 1M customers these tests took 26 s of a daily run). A build that
   wrote every row (a full build: one built_at) is checked whole, without the probe, which there
   would only add work (a full L build's dbt tests took 118.7 s of thread time with it, 63.5
   before, 69.9 after). Rows written with no built_at (by a version of the model without the column) are left
   to the test of the build that wrote them.
   The written keys are matched on the plain columns of `columns` only (an expression such as
   `coalesce(account_id, '')` left out): rows sharing every key share those, so no duplicate is
   missed, and DuckDB then filters the table by the written keys' ranges before the join. With
   the expression in the match it probed every row: 3.0-4.0 s against 0.05-0.07 s on the visits
   at 1M customers (16.2M rows, 206k written), a step on the daily run's longest path.

   Checked whole on DuckDB, the keys' hashes are counted first, `count(*) - count(distinct
   hash(keys))`: equal keys hash equal, so that count is never below the true number of extra
   rows, and at zero (the usual case) there is no duplicate and the grouping of every key is
   skipped. Any other count (a duplicate, or a collision of two keys) runs the grouping, which
   alone decides. At 1M customers: the tag history 1.7-2.3 -> 1.0 s, the current tags 1.4 ->
   0.8 s, the visits 1.9 -> 1.5 s. #}
{% test unique_combination(model, columns, latest_build=none) %}
{%- set keys = columns | join(', ') -%}
{%- set narrowed = latest_build is not none and fact_materialization() == 'incremental' -%}
{%- if narrowed and execute -%}
    {%- set narrowed = run_query("select min(" ~ latest_build ~ ") < max(" ~ latest_build ~ ") from " ~ model).columns[0].values()[0] -%}
{%- endif -%}
{%- set plain = [] -%}
{%- for column in columns if '(' not in column and ' ' not in column -%}{%- do plain.append(column) -%}{%- endfor -%}
{%- set matched = plain if plain else columns -%}
{%- set not_null -%}
{% for column in columns %}{{ column }} is not null{{ ' and ' if not loop.last }}{% endfor %}
{%- endset -%}
{%- set hash_first = not narrowed and target.type == 'duckdb' -%}
{%- if narrowed %}
with written as (
    select distinct {% for column in matched %}{{ column }} as written_key_{{ loop.index }}{{ ', ' if not loop.last }}{% endfor %}
    from {{ model }}
    where {{ latest_build }} = (select max({{ latest_build }}) from {{ model }})
)

{% elif hash_first %}
with hashed as (
    select count(*) - count(distinct hash({{ keys }})) as beyond_distinct_hashes
    from {{ model }}
    where {{ not_null }}
)

{% endif -%}
select {{ keys }}, count(*) as n_records
from {{ model }}
where {{ not_null }}
{%- if narrowed %}
    and exists (
        select 1 from written
        where {% for column in matched %}written_key_{{ loop.index }} = {{ column }}{{ ' and ' if not loop.last }}{% endfor %}
    )
{%- elif hash_first %}
    and (select beyond_distinct_hashes from hashed) > 0
{%- endif %}
group by {{ keys }}
having count(*) > 1
{% endtest %}
