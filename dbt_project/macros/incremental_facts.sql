{# The large fact models (int_device_sessions_sessionised, int_purchases_recorded) are
   incremental on DuckDB. On Spark they are plain tables: dbt-spark can only merge into Delta
   Lake (or Iceberg / Hudi) tables, and this project writes Parquet there (dbt_project.yml);
   a Delta deployment can switch them back to incremental with a merge. #}
{% macro fact_materialization() -%}{{ return(adapter.dispatch('fact_materialization', 'customer_360')()) }}{%- endmacro %}
{% macro default__fact_materialization() -%}{{ return('incremental') }}{%- endmacro %}
{% macro spark__fact_materialization() -%}{{ return('table') }}{%- endmacro %}

{# When a row was written: the dbt invocation's start, one value for every row a build writes.
   The facts' `built_at`; the unique tests of an incremental fact read the keys of the latest
   build's rows (tests/generic/unique_combination.sql). To the microsecond: the incremental
   identity models take the rows written after their own latest `resolved_at`, so two builds
   within one second (in-process dbt runs, 0.3 s apart) must not share a time: the second
   would find nothing new and skip its work (a split component kept one id in both halves). #}
{% macro build_time() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{# incremental_strategy='replace_tail': for each partition in the new batch (a device), delete
   the target's rows from the batch's first row on (by tail_ordered_by) and insert the batch.
   A model using it recomputes each changed partition from the point its new data can affect
   (int_device_sessions_sessionised: the first session the new events can touch) and keeps the
   rows before it, so a long history is not re-read for one new event, and rows the batch no
   longer produces (two sessions merged into one) go too. Runs inside the model's transaction. #}
{% macro get_incremental_replace_tail_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set partition_by = config.require('tail_partitioned_by') -%}
    {%- set ordered_by = config.require('tail_ordered_by') -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    using (
        select {{ partition_by }} as tail_partition, min({{ ordered_by }}) as tail_from
        from {{ source }}
        group by {{ partition_by }}
    ) as tails
    where {{ target }}.{{ partition_by }} = tails.tail_partition
        and {{ target }}.{{ ordered_by }} >= tails.tail_from;

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{% endmacro %}

{# incremental_strategy='replace_marked': a batch row whose `marked_by` column is null (a marker)
   replaces every row of its partition (`partitioned_by`); any other batch row replaces the target
   row with the same partition and `marked_by` value. Only batch rows that meet `inserted_when`
   are inserted: the others are markers, which delete and are not inserted. A model using it
   recomputes some partitions whole (int_interactions_weighted: customers whose identity changed)
   and only some rows of others (the products a customer just bought or browsed), so the rows it
   does not recompute stay as they are. Runs inside the model's transaction. #}
{% macro get_incremental_replace_marked_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set partition_by = config.require('marked_partitioned_by') -%}
    {%- set marked_by = config.require('marked_by') -%}
    {%- set inserted_when = config.require('inserted_when') -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    where {{ partition_by }} in (select {{ partition_by }} from {{ source }} where {{ marked_by }} is null);

    delete from {{ target }}
    using (select distinct {{ partition_by }}, {{ marked_by }} from {{ source }} where {{ marked_by }} is not null) as batch
    where {{ target }}.{{ partition_by }} = batch.{{ partition_by }}
        and {{ target }}.{{ marked_by }} = batch.{{ marked_by }};

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }} where {{ marked_by }} is not null and ({{ inserted_when }})
{% endmacro %}

{# The state an incremental model with `loaded_through` and `built_at` columns continues from, as
   the body of its `previous` CTE: the latest load its rows were built from, when they were last
   written, and with `catalogue` (a scalar query of today's catalogue hash) `everything`: whether
   rows were built under another catalogue. The start of time for an empty table. #}
{% macro previous_build(catalogue=none) -%}
    select
        coalesce(max(loaded_through), cast('1900-01-01' as timestamp)) as loaded_through,
        coalesce(max(built_at), cast('1900-01-01' as timestamp)) as built_at
        {%- if catalogue %},
        coalesce(bool_or(catalogue_hash <> {{ catalogue }}), false) as everything
        {%- endif %}
    from {{ this }}
{%- endmacro %}

{# The previous build's `loaded_through` and `built_at` (`previous_build()`) for the filters that
   use them, as `{'loaded_through': sql, 'built_at': sql}`. In a run, the values themselves, read by
   one query when the model is compiled (just before it runs, after its parents), so that DuckDB
   can skip the row groups loaded before them; a scalar subquery of the `previous` CTE skips
   nothing (at 1M customers int_interactions_weighted's daily statement took 12.8-13.8 s with the
   subqueries, 9.9 s with the values; int_purchases_unioned's 3.7-4.8 s, 2.7 s). A unit test's
   `this` is its fixture's name, a string: there the subqueries read the fixture.
   Not for a model with a pre-hook that can delete its rows (the reset hooks of the rollups and the
   identity records): the values are read before the hook runs, and would outlive the reset. #}
{% macro previous_build_values() -%}
    {%- set subqueries = {'loaded_through': '(select loaded_through from previous)', 'built_at': '(select built_at from previous)'} -%}
    {%- if not execute or this is string or not is_incremental() -%}{{ return(subqueries) }}{%- endif -%}
    {%- if adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) is none -%}
        {{- return(subqueries) -}}
    {%- endif -%}
    {%- set row = run_query(previous_build()).rows[0] -%}
    {{- return({'loaded_through': "cast('" ~ row[0] ~ "' as timestamp)", 'built_at': "cast('" ~ row[1] ~ "' as timestamp)"}) -}}
{%- endmacro %}

{# When the model's rows were last written: its latest `built_at`, for a model that keeps no load
   watermark (the per-customer summaries recompute the customers whose inputs were written since).
   A value in a run, as previous_build_values() gives, so that DuckDB skips the row groups of the
   inputs written before it; a subquery in a unit test. The start of time for an empty table. #}
{% macro previous_build_time() -%}
    {{- return(latest_in_this('built_at')) -}}
{%- endmacro %}

{# The latest `column` of the model's own table, the start of time when it is empty: in a run the
   value itself, read when the model is compiled; with `as_value=false`, or in a unit test (whose
   `this` is a fixture's name), a scalar subquery. #}
{% macro latest_in_this(column, as_value=true) -%}
    {%- set latest = "(select coalesce(max(" ~ column ~ "), cast('1900-01-01' as timestamp)) from " ~ this ~ ")" -%}
    {%- if not as_value or not execute or this is string or not is_incremental() -%}{{ return(latest) }}{%- endif -%}
    {%- set value = run_query("select " ~ latest).columns[0].values()[0] -%}
    {{- return("cast('" ~ value ~ "' as timestamp)") -}}
{%- endmacro %}

{# Whether every identity record (`identity`: int_identity_records_matched) was resolved after
   `since`: records gone from a source make the identity start afresh, and then an id may name no
   one although no change of ids mentions it (a person whose records all went). A model then probes
   its whole table for such ids. True where it cannot ask (parsing, a unit test). #}
{% macro identity_resolved_afresh_since(since, identity) -%}
    {%- if not execute or this is string -%}{{ return(true) }}{%- endif -%}
    {{- return(run_query("select count(*) filter (where resolved_at <= " ~ since ~ ") = 0 from " ~ identity).columns[0].values()[0]) -}}
{%- endmacro %}

{# The customers a per-customer summary recomputes in a run after its build at `since`: those of
   the rows of `written` (relations with `customer_id` and `built_at`) written since, of the
   identity records resolved since (merges, splits: a person may have lost records to another),
   the ids those records held before (`ids`, int_customer_ids_assigned: the other side of a
   merge, whose rows go), and the buyers of the purchases recorded since (an order re-sent as
   cancelled is taken out of the purchases and lines, and nothing is written for its buyer).
   When every record was resolved again (records gone from a source make the identity start
   afresh), also the model's customers who are no longer anyone's id: a whole-table probe (2.4 s
   at 1M customers), not needed on other days. `identity` and `recorded` are
   int_identity_records_matched and int_purchases_recorded, passed by the model so that dbt sees
   its references when it parses it. #}
{% macro customers_changed_since(since, written, identity, recorded, ids) -%}
    {%- set everyone = identity_resolved_afresh_since(since, identity) -%}
    {%- for relation in written %}
    select customer_id from {{ relation }} where built_at > {{ since }}
    union
    {%- endfor %}
    select customer_id from {{ identity }} where resolved_at > {{ since }}
    union
    select previous_customer_id from {{ ids }} where resolved_at > {{ since }} and previous_customer_id is not null
    union
    select i.customer_id
    from {{ recorded }} r
    join {{ identity }} i on i.source = r.source and i.source_record_id = r.source_record_id
    where r.built_at > {{ since }}
    {%- if everyone %}
    union
    select customer_id from {{ this }}
    where customer_id not in (select customer_id from {{ identity }} where customer_id is not null)
    {%- endif %}
{%- endmacro %}

{# The incremental facts' watermark: the latest load time their rows were built from (`loaded_through`);
   a run reads the source rows loaded after it. The start of time for an empty table.
   With `as_value`, in a run, the value itself, read when the model is compiled (as
   previous_build_values()): compared with a scalar subquery, DuckDB filters the source only after
   reading and projecting every row of it (int_device_sessions_sessionised's daily statement at 1M
   customers: the staging view's 89M clickstream rows, 13.9 s). Not for the rolled-up facts: their
   pre-hook can delete every row after the model is compiled (reset_if_source_rows_vanished). A
   subquery in a unit test, whose `this` is a fixture's name. #}
{% macro loaded_watermark(as_value=false) -%}
    {{- return(latest_in_this('loaded_through', as_value)) -}}
{%- endmacro %}

{# A pre-hook for the rolled-up facts (int_device_visits_summarised, int_device_products_touched):
   they only fold in rows loaded after their watermark, so rows removed from the source (an
   erasure also removes the device's rolled-up rows, but a hand-deleted raw row would not) would
   stay counted for ever. Every source row loaded up to the watermark is counted exactly once in
   `counted` (an aggregate over the table), so the two totals differ only when rows vanished (or
   arrived stamped before the watermark): then every row is deleted, the watermark falls back to
   the beginning, and the run rebuilds the table whole. Costs one count over the source. #}
{% macro reset_if_source_rows_vanished(counted, source, where) -%}
    {%- if execute and is_incremental() -%}
        {%- set check -%}
            select (select coalesce({{ counted }}, 0) from {{ this }}) <> (
                select count(*) from {{ source }}
                where {{ where }}
                    and _loaded_at <= {{ loaded_watermark() }}
            )
        {%- endset -%}
        {{ delete_all_rows_if(check) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# The statement of a reset pre-hook (reset_if_source_rows_vanished, and
   reset_identity_records_if_rows_vanished in identity_graph.sql): `check` is a query of one
   boolean, true when source rows the model counted are gone; then every row of the model is
   deleted so that the run rebuilds it whole, else nothing is done. #}
{% macro delete_all_rows_if(check) -%}
    {%- if run_query(check).columns[0].values()[0] -%}
        {{ log("Source rows counted in " ~ this ~ " are gone: rebuilding it whole.", info=true) }}
        delete from {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
