{# Connected components of an undirected graph given as `adjacency` (columns node, neighbour:
   integers, both directions of every edge): one row (node, label) per node with an edge, the
   label being the smallest node of its component. A select statement, for a CTE body.

   For engines other than DuckDB (Spark), whose identity model has no union-find: DuckDB builds
   the labels in the Python model int_identity_component_labels (scipy), because a recursive CTE
   held its whole state in memory (about 7 GB at 1M customers). Spark has no keyed recursion, and
   a CTE is inlined at every reference, so `rounds` plain rounds of min-label propagation, one hop
   each (a node's own label needs no reading: with both directions of every edge, its neighbours
   offer it back); assert_identity_components_converged fails the build if the rounds ever stop
   being enough. #}
{% macro connected_component_labels(adjacency, rounds=16) -%}
    {{ return(adapter.dispatch('connected_component_labels', 'customer_360')(adjacency, rounds)) }}
{%- endmacro %}

{% macro default__connected_component_labels(adjacency, rounds) -%}
with labels_0 as (
    select node, min(least(node, neighbour)) as label from {{ adjacency }} group by node
),
{%- for i in range(1, rounds + 1) %}
labels_{{ i }} as (
    select a.node, min(l.label) as label
    from {{ adjacency }} a
    join labels_{{ i - 1 }} l on l.node = a.neighbour
    group by a.node
){{ ',' if not loop.last }}
{%- endfor %}
select node, label from labels_{{ rounds }}
{%- endmacro %}

{# The model's own table as its last build left it, when this build may continue from it: on
   DuckDB, not under --full-refresh, and when that table has `columns` (an older layout does
   not). None otherwise: the model is built from scratch (Spark builds identity in full: its
   Parquet tables cannot be read while they are replaced). #}
{% macro identity_previous_build(columns) -%}
    {{ return(adapter.dispatch('identity_previous_build', 'customer_360')(columns)) }}
{%- endmacro %}

{% macro default__identity_previous_build(columns) -%}{{ return(none) }}{%- endmacro %}

{% macro duckdb__identity_previous_build(columns) -%}
    {%- if not execute or flags.FULL_REFRESH -%}{{ return(none) }}{%- endif -%}
    {%- set relation = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {%- if relation is none -%}{{ return(none) }}{%- endif -%}
    {%- set present = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- for column in columns if column not in present -%}{{ return(none) }}{%- endfor -%}
    {{ return(relation) }}
{%- endmacro %}

{# False when the model's built table lacks `columns` (a layout from before they were added):
   the run then recomputes every row. True otherwise, unit-test fixtures included. #}
{% macro identity_state_readable(columns) -%}
    {#- A unit test's `this` is its fixture's name, a string. -#}
    {%- if not execute or this is string -%}{{ return(true) }}{%- endif -%}
    {%- set relation = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {%- if relation is none -%}{{ return(true) }}{%- endif -%}
    {%- set present = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- for column in columns if column not in present -%}{{ return(false) }}{%- endfor -%}
    {{ return(true) }}
{%- endmacro %}


{#- A 64-bit hash with its top bit set. Why: a stored hash is a plain number, and one in 20 random
    64-bit values has 18 digits, which now and then passes the PRC id check the PII scanner (c360
    scan-pii) applies. With the top bit set every value has 19 digits starting with 9, or 20 digits:
    never an 18-character id nor a card (13-19 digits starting 2-6). Spark's hash is 32-bit. -#}
{% macro identity_hash(columns) -%}
{%- if target.type == 'duckdb' -%}
(hash({{ columns }}) | 9223372036854775808::ubigint)
{%- else -%}
hash({{ columns }})
{%- endif -%}
{%- endmacro %}

{# A pre-hook for int_identity_records_unioned, which only rebuilds the records with source rows
   loaded after its watermark: rows removed from a source (an erasure also removes the records,
   but a hand-deleted raw row would not) would leave stale records and keys for ever. Each record
   counts the source rows it was built from (`source_rows`: 1 per keyed row, a receipt's lines,
   a device's events), so per source the stored sum equals the source's rows loaded up to the
   watermark unless rows vanished (or arrived stamped before it): then every record is deleted
   and the run rebuilds them all (numbered afresh: int_identity_components_resolved sees the
   renumbering and recomputes every component; customer ids do not change). Costs a count per
   source, the clickstream's being the one int_device_visits_summarised's pre-hook also runs. #}
{% macro reset_identity_records_if_rows_vanished() -%}
    {%- if execute and is_incremental() and identity_state_readable(['loaded_through', 'source_rows']) -%}
        {%- set watermark = "(select coalesce(max(loaded_through), cast('1900-01-01' as timestamp)) from " ~ this ~ ")" -%}
        {%- set sources = [
            ('crm_customers', ref('stg_crm__customers'), 'customer_ref is not null'),
            ('ecommerce_orders', ref('stg_ecommerce__orders'), 'order_id is not null'),
            ('web_events', ref('stg_web__events'), 'device_id is not null and session_id is not null'),
            ('pos_transactions', ref('stg_pos__transaction_lines'), 'transaction_id is not null'),
            ('service_tickets', ref('stg_service__tickets'), 'ticket_id is not null'),
            ('product_reviews', ref('stg_reviews__product_reviews'), 'review_id is not null'),
            ('marketing_consent', ref('stg_consent__consent_events'), 'consent_event_id is not null'),
        ] -%}
        {%- set check -%}
            with counted as (
                select source, sum(source_rows) as source_rows from {{ this }} group by source
            ),
            present as (
                {%- for name, relation, where in sources %}
                select '{{ name }}' as source, count(*) as source_rows from {{ relation }}
                where {{ where }} and _loaded_at <= {{ watermark }}
                {{ 'union all' if not loop.last }}
                {%- endfor %}
            )
            select count(*) > 0
            from present p
            full join counted c using (source)
            where coalesce(p.source_rows, 0) <> coalesce(c.source_rows, 0)
        {%- endset -%}
        {{ delete_all_rows_if(check) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# The post-hook of the identity models kept by record_id (int_identity_components_resolved over
   the records, int_identity_records_matched over the components): delete the rows of records that
   are gone from `records`. A build inserts every new record and every record it resolved again
   and keeps the others, so the table holds each record of `records` once: it has more rows only
   when some are gone (an erasure, a renumbering). The two counts come from DuckDB's statistics;
   the anti-join over every record (0.8 s at 1M customers, each run before) runs only then. #}
{% macro delete_vanished_records(records) -%}
    {%- if execute and is_incremental() -%}
        {%- set counts = run_query("select (select count(*) from " ~ this ~ "), (select count(*) from " ~ records ~ ")") -%}
        {%- if counts.columns[0].values()[0] > counts.columns[1].values()[0] -%}
            delete from {{ this }} where record_id is null or record_id not in (select record_id from {{ records }})
        {%- else -%}
            select 1
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# Records built from scratch (a new home, --full-refresh) get their numbers from their position in
   the written table, not from a window in the statement. On DuckDB, `row_number() over ()` over
   the records made DuckDB hold every record, keys and all, in one window before writing any: at
   1M customers (19M records) the model took 50.5 s alone, 24-29 s with the numbers set after the
   write (`number_records_by_position`, a post-hook). Other engines keep numbering in the
   statement (Spark: monotonically_increasing_id). #}
{% macro record_number_before_numbering() -%}
    {{ return(adapter.dispatch('record_number_before_numbering', 'customer_360')()) }}
{%- endmacro %}
{% macro default__record_number_before_numbering() -%}{{ unordered_row_number() }}{%- endmacro %}
{% macro duckdb__record_number_before_numbering() -%}cast(null as bigint){%- endmacro %}

{# The post-hook that numbers the records a build wrote without a number (only a build from
   scratch does): by rowid, less the smallest, plus one. A row's rowid is its position in the
   table, unique; inside the build's transaction DuckDB offsets the new rows' rowids by a constant
   (2^55), which the smallest takes away, so a fresh table is numbered 1..n. An incremental build
   writes every record numbered: nothing is null, and DuckDB skips the row groups by their null
   statistics. #}
{% macro number_records_by_position() -%}
    {{ return(adapter.dispatch('number_records_by_position', 'customer_360')()) }}
{%- endmacro %}
{% macro default__number_records_by_position() -%}select 1{%- endmacro %}
{% macro duckdb__number_records_by_position() -%}
update {{ this }} set record_id = rowid - (select min(rowid) from {{ this }}) + 1 where record_id is null
{%- endmacro %}
