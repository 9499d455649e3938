{# SQL that DuckDB and Spark spell differently, one macro per idiom (docs/SCALE_OUT.md). Each has
   a duckdb__ body that renders exactly the SQL the models used before (so DuckDB output does not
   change) and a spark__ body with the same semantics; dbt's own cross-database macros
   (dbt.array_construct, dbt.type_*) are used where they already agree. #}

{# The string type: DuckDB's varchar; Spark rejects varchar without a length. #}
{% macro string_type() -%}{{ return(adapter.dispatch('string_type', 'customer_360')()) }}{%- endmacro %}
{% macro duckdb__string_type() -%}varchar{%- endmacro %}
{% macro default__string_type() -%}string{%- endmacro %}

{# A type name written the DuckDB way (as in source_or_empty's column lists) for this engine. #}
{% macro portable_type(name) -%}
    {%- if name | lower in ('varchar', 'text', 'string') -%}{{ string_type() }}{%- else -%}{{ name }}{%- endif -%}
{%- endmacro %}

{# The value at the row with the largest (smallest) key, skipping rows whose value is null as
   DuckDB's arg_max does. `key` is an expression or a list of them (compared left to right). #}
{% macro arg_max_of(value, key) -%}{{ return(adapter.dispatch('arg_max_of', 'customer_360')(value, key, 'max')) }}{%- endmacro %}
{% macro arg_min_of(value, key) -%}{{ return(adapter.dispatch('arg_max_of', 'customer_360')(value, key, 'min')) }}{%- endmacro %}
{% macro duckdb__arg_max_of(value, key, fn) -%}
    arg_{{ fn }}({{ value }}, {% if key is string %}{{ key }}{% else %}({{ key | join(', ') }}){% endif %})
{%- endmacro %}
{% macro default__arg_max_of(value, key, fn) -%}
    {{ fn }}_by({{ value }}, case when {{ value }} is not null then {% if key is string %}{{ key }}{% else %}struct({{ key | join(', ') }}){% endif %} end)
{%- endmacro %}

{# Any non-null value of the group. #}
{% macro any_value_of(value) -%}{{ return(adapter.dispatch('any_value_of', 'customer_360')(value)) }}{%- endmacro %}
{% macro duckdb__any_value_of(value) -%}any_value({{ value }}){%- endmacro %}
{% macro default__any_value_of(value) -%}any_value({{ value }}, true){%- endmacro %}

{# Whole datepart boundaries crossed from start to end, as DuckDB's date_diff counts them
   (year: calendar years, not age). dbt.datediff differs on Spark for years. #}
{% macro date_diff_of(datepart, start, end) -%}{{ return(adapter.dispatch('date_diff_of', 'customer_360')(datepart, start, end)) }}{%- endmacro %}
{% macro duckdb__date_diff_of(datepart, start, end) -%}date_diff('{{ datepart }}', {{ start }}, {{ end }}){%- endmacro %}
{% macro default__date_diff_of(datepart, start, end) -%}
    {%- if datepart == 'year' -%} cast(year({{ end }}) - year({{ start }}) as bigint)
    {%- elif datepart == 'day' -%} cast(datediff(cast({{ end }} as date), cast({{ start }} as date)) as bigint)
    {%- elif datepart == 'second' -%} (unix_timestamp({{ end }}) - unix_timestamp({{ start }}))
    {%- else -%} {{ exceptions.raise_compiler_error("date_diff_of: datepart '" ~ datepart ~ "' is not implemented for " ~ target.type) }}
    {%- endif -%}
{%- endmacro %}

{# Days from one date to another (DuckDB: date - date; Spark's gives an interval). #}
{% macro days_between(start, end) -%}{{ return(adapter.dispatch('days_between', 'customer_360')(start, end)) }}{%- endmacro %}
{% macro duckdb__days_between(start, end) -%}{{ end }} - {{ start }}{%- endmacro %}
{% macro default__days_between(start, end) -%}cast(datediff({{ end }}, {{ start }}) as bigint){%- endmacro %}

{# Lists (DuckDB) / arrays (Spark). #}
{% macro list_size(list) -%}{{ return(adapter.dispatch('list_size', 'customer_360')(list)) }}{%- endmacro %}
{% macro duckdb__list_size(list) -%}len({{ list }}){%- endmacro %}
{% macro default__list_size(list) -%}size({{ list }}){%- endmacro %}

{% macro list_join(list, separator) -%}{{ return(adapter.dispatch('list_join', 'customer_360')(list, separator)) }}{%- endmacro %}
{% macro duckdb__list_join(list, separator) -%}array_to_string({{ list }}, {{ separator }}){%- endmacro %}
{% macro default__list_join(list, separator) -%}array_join({{ list }}, {{ separator }}){%- endmacro %}

{# The list without its nulls, [] when the list itself is null. #}
{% macro list_compact(list) -%}{{ return(adapter.dispatch('list_compact', 'customer_360')(list)) }}{%- endmacro %}
{% macro duckdb__list_compact(list) -%}coalesce(list_filter({{ list }}, lambda k: k is not null), []){%- endmacro %}
{% macro default__list_compact(list) -%}coalesce(filter({{ list }}, k -> k is not null), array()){%- endmacro %}

{# Aggregate: the sorted distinct non-null values of the group. #}
{% macro sorted_set_agg(value, where) -%}{{ return(adapter.dispatch('sorted_set_agg', 'customer_360')(value, where)) }}{%- endmacro %}
{% macro duckdb__sorted_set_agg(value, where) -%}list_sort(list(distinct {{ value }}) filter (where {{ where }})){%- endmacro %}
{% macro default__sorted_set_agg(value, where) -%}array_sort(collect_set({{ value }}) filter (where {{ where }})){%- endmacro %}

{# Aggregate: the values of the group ordered by an expression. #}
{% macro ordered_list_agg(value, order_by, where) -%}{{ return(adapter.dispatch('ordered_list_agg', 'customer_360')(value, order_by, where)) }}{%- endmacro %}
{% macro duckdb__ordered_list_agg(value, order_by, where) -%}list({{ value }} order by {{ order_by }}) filter (where {{ where }}){%- endmacro %}
{% macro default__ordered_list_agg(value, order_by, where) -%}
    nullif(transform(array_sort(collect_list(struct({{ order_by }} as k, {{ value }} as v)) filter (where {{ where }})), x -> x.v), array())
{%- endmacro %}

{# One row per element of a list (in a select list). #}
{% macro explode_list(list) -%}{{ return(adapter.dispatch('explode_list', 'customer_360')(list)) }}{%- endmacro %}
{% macro duckdb__explode_list(list) -%}unnest({{ list }}){%- endmacro %}
{% macro default__explode_list(list) -%}explode({{ list }}){%- endmacro %}

{# Hex SHA-256 of a string. #}
{% macro sha256_hex(value) -%}{{ return(adapter.dispatch('sha256_hex', 'customer_360')(value)) }}{%- endmacro %}
{% macro duckdb__sha256_hex(value) -%}sha256({{ value }}){%- endmacro %}
{% macro default__sha256_hex(value) -%}sha2({{ value }}, 256){%- endmacro %}

{# Continuous (interpolated) quantile. #}
{% macro quantile_cont_of(value, fraction) -%}{{ return(adapter.dispatch('quantile_cont_of', 'customer_360')(value, fraction)) }}{%- endmacro %}
{% macro duckdb__quantile_cont_of(value, fraction) -%}quantile_cont({{ value }}, {{ fraction }}){%- endmacro %}
{% macro default__quantile_cont_of(value, fraction) -%}percentile({{ value }}, {{ fraction }}){%- endmacro %}

{# Jaro-Winkler similarity (prefix weight 0.1 over at most 4 characters, applied above 0.7), as
   DuckDB's jaro_winkler_similarity computes it. Spark has no such function: the matching pass is
   a fold over the first string's characters; `transform(array(x), v -> ...)[0]` binds x once. #}
{% macro jaro_winkler(a, b) -%}{{ return(adapter.dispatch('jaro_winkler', 'customer_360')(a, b)) }}{%- endmacro %}
{% macro duckdb__jaro_winkler(a, b) -%}jaro_winkler_similarity({{ a }}, {{ b }}){%- endmacro %}
{% macro default__jaro_winkler(a, b) -%}
case when length({{ a }}) = 0 or length({{ b }}) = 0 then cast(0 as double) else
transform(array(named_struct('l1', length({{ a }}), 'l2', length({{ b }}),
    'w', greatest(greatest(length({{ a }}), length({{ b }})) div 2 - 1, 0))), p ->
  transform(array(aggregate(
      sequence(1, p.l1),
      named_struct('used', array_repeat(false, p.l2), 'hits', cast(array() as array<int>)),
      (acc, i) -> transform(array(array_min(filter(sequence(1, p.l2), j ->
              abs(j - i) <= p.w and not element_at(acc.used, j) and substr({{ b }}, j, 1) = substr({{ a }}, i, 1)))), j ->
          if(j is null, acc, named_struct(
              'used', transform(acc.used, (u, k) -> u or k + 1 = j),
              'hits', concat(acc.hits, array(i)))))[0]
  )), f ->
    transform(array(named_struct(
        'm', size(f.hits),
        't', size(filter(zip_with(
                transform(f.hits, i -> substr({{ a }}, i, 1)),
                filter(transform(f.used, (u, k) -> if(u, substr({{ b }}, k + 1, 1), null)), c -> c is not null),
                (x, y) -> x != y), d -> d)) div 2,
        'prefix', aggregate(sequence(1, least(4, p.l1, p.l2)), 0,
                (n, k) -> if(n = k - 1 and substr({{ a }}, k, 1) = substr({{ b }}, k, 1), k, n)))), s ->
      case when s.m = 0 then cast(0 as double) else
        transform(array((s.m / p.l1 + s.m / p.l2 + (s.m - s.t) / s.m) / 3.0), jaro ->
          if(jaro > 0.7, jaro + s.prefix * 0.1 * (1.0 - jaro), jaro))[0]
      end
    )[0]
  )[0]
)[0]
end
{%- endmacro %}

{# How int_customer_ids_assigned replaces the rows it recomputes: DuckDB deletes and re-inserts by key; Spark (Parquet tables, no Delta Lake here) overwrites the
   table, which is the same thing because the model recomputes every record's id. #}
{% macro replace_rows_strategy() -%}{{ return(adapter.dispatch('replace_rows_strategy', 'customer_360')()) }}{%- endmacro %}
{% macro default__replace_rows_strategy() -%}{{ return('delete+insert') }}{%- endmacro %}
{% macro spark__replace_rows_strategy() -%}{{ return('merge' if config.get('file_format') in ('delta', 'iceberg', 'hudi') else 'insert_overwrite') }}{%- endmacro %}

{# A sum of money that is the same on every run: summed as decimals, then a double again. A
   parallel sum of doubles can differ in its last bit from one run to the next, and the RFM
   quintiles then split a tie differently (a customer or two changed segment between two builds
   of the same data at 1M customers). ``where``: an aggregate filter; ``over``: a window
   (``partition by ...``) to sum over instead of the group. #}
{% macro exact_sum(value, where=none, over=none) -%}
cast(sum(cast({{ value }} as decimal(38, 10))){% if where %} filter (where {{ where }}){% endif %}{% if over %} over ({{ over }}){% endif %} as double)
{%- endmacro %}

{# An RFM quintile score 1..5 by percent rank, so customers with equal values share a score
   (customer_rfm, and rfm_segment_movement for earlier as-of dates). #}
{% macro rfm_quintile(order_by, partition_by=none) -%}
least(5, 1 + floor(5 * percent_rank() over ({% if partition_by %}partition by {{ partition_by }} {% endif %}order by {{ order_by }})))::integer
{%- endmacro %}

{# A string split into a list at a literal separator (Spark's split takes a regular expression:
   the separator must not be a regex metacharacter). #}
{% macro split_list(value, separator) -%}{{ return(adapter.dispatch('split_list', 'customer_360')(value, separator)) }}{%- endmacro %}
{% macro duckdb__split_list(value, separator) -%}string_split({{ value }}, {{ separator }}){%- endmacro %}
{% macro default__split_list(value, separator) -%}split({{ value }}, {{ separator }}){%- endmacro %}

{# One tag rule of int_customer_tags_assigned as a struct (tag_group, tag, value), the value being
   the body of a call block: {% call tag_rule('basic', 'gender') %}expr{% endcall %};
   and a list of them: {% call list_of() %}rule, rule{% endcall %}. DuckDB writes
   struct and list literals, Spark named_struct and array. #}
{% macro tag_rule(tag_group, tag) -%}{{ adapter.dispatch('tag_rule', 'customer_360')(tag_group, tag, caller()) }}{%- endmacro %}
{% macro duckdb__tag_rule(tag_group, tag, value) -%}{'tag_group': '{{ tag_group }}', 'tag': '{{ tag }}', 'value': {{ value }} }{%- endmacro %}
{% macro default__tag_rule(tag_group, tag, value) -%}named_struct('tag_group', '{{ tag_group }}', 'tag', '{{ tag }}', 'value', {{ value }}){%- endmacro %}

{% macro list_of() -%}{{ adapter.dispatch('list_of', 'customer_360')(caller()) }}{%- endmacro %}
{% macro duckdb__list_of(items) -%}[{{ items }}]{%- endmacro %}
{% macro default__list_of(items) -%}array({{ items }}){%- endmacro %}

{# One row per date from `first` to `last` (inclusive) every `step_days`, as column `name`, for each
   row of `relation` (whose columns `first` and `last` name): a calendar grid. #}
{% macro date_series(relation, first, last, step_days, name) -%}{{ return(adapter.dispatch('date_series', 'customer_360')(relation, first, last, step_days, name)) }}{%- endmacro %}
{% macro duckdb__date_series(relation, first, last, step_days, name) -%}
select cast(r.{{ name }} as date) as {{ name }} from {{ relation }}, range({{ first }}, {{ last }} + 1, interval {{ step_days }} day) as r({{ name }})
{%- endmacro %}
{% macro default__date_series(relation, first, last, step_days, name) -%}
select explode(sequence({{ first }}, {{ last }}, interval {{ step_days }} days)) as {{ name }} from {{ relation }}
{%- endmacro %}

{# A unique bigint per row of the query, in no particular order and without sorting (DuckDB:
   row_number over the unordered stream; Spark: monotonically_increasing_id, unique but not dense).
   Not stable across builds: join on it only within one build. #}
{% macro unordered_row_number() -%}{{ return(adapter.dispatch('unordered_row_number', 'customer_360')()) }}{%- endmacro %}
{% macro duckdb__unordered_row_number() -%}row_number() over (){%- endmacro %}
{% macro default__unordered_row_number() -%}monotonically_increasing_id(){%- endmacro %}

{# The smallest element of a list (null when empty). #}
{% macro list_min(list) -%}{{ return(adapter.dispatch('list_min', 'customer_360')(list)) }}{%- endmacro %}
{% macro duckdb__list_min(list) -%}list_min({{ list }}){%- endmacro %}
{% macro default__list_min(list) -%}array_min({{ list }}){%- endmacro %}

{# Aggregate: the values of the group as a list, in no particular order. #}
{% macro unordered_list_agg(value) -%}{{ return(adapter.dispatch('unordered_list_agg', 'customer_360')(value)) }}{%- endmacro %}
{% macro duckdb__unordered_list_agg(value) -%}list({{ value }}){%- endmacro %}
{% macro default__unordered_list_agg(value) -%}collect_list({{ value }}){%- endmacro %}

{# A timestamp plus a whole number of days. #}
{% macro add_days(ts, days) -%}{{ return(adapter.dispatch('add_days', 'customer_360')(ts, days)) }}{%- endmacro %}
{% macro duckdb__add_days(ts, days) -%}({{ ts }} + to_days(cast({{ days }} as integer))){%- endmacro %}
{% macro default__add_days(ts, days) -%}timestampadd(DAY, {{ days }}, {{ ts }}){%- endmacro %}
