-- Product views and add-to-carts rolled up per device and product: counts, first and last touch.
-- int_interactions_weighted recomputes a customer from these rows (about half as many as the
-- events, and already filtered to the two event types) instead of from the whole clickstream.
--
-- Incremental on DuckDB (a table on Spark, as the other incremental facts): counts add up and the
-- first and last touch are a min and a max, so a run folds the events loaded since the last run
-- (`loaded_through`, the watermark) into the rows of the (device, product) pairs they touch and
-- replaces just those rows. Nothing here is attributed to a person: identity changes need no
-- rebuild, an erasure deletes the device's rows like those of any derived table, and source rows
-- removed any other way make the next run rebuild the table (the pre-hook,
-- macros/incremental_facts.sql).
{{ config(
    materialized=fact_materialization(),
    unique_key=['device_id', 'product_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{{ reset_if_source_rows_vanished('sum(views + carts)', ref('stg_web__events'), \"event_type in ('product_view', 'add_to_cart') and product_id is not null and device_id is not null\") }}",
) }}

with events as (
    select * from {{ ref('stg_web__events') }}
    where event_type in ('product_view', 'add_to_cart')
        and product_id is not null
        and device_id is not null
    {% if is_incremental() %}
        and _loaded_at > {{ loaded_watermark() }}
    {% endif %}
),

touched as (
    select
        device_id,
        product_id,
        count(*) filter (where event_type = 'product_view') as views,
        count(*) filter (where event_type = 'add_to_cart') as carts,
        min(occurred_at) as first_touched_at,
        max(occurred_at) as last_touched_at,
        max(_loaded_at) as loaded_through
    from events
    group by device_id, product_id
),

{% if is_incremental() %}
-- The stored rows of the pairs the new events touch, folded with them.
folded as (
    select
        device_id,
        product_id,
        sum(views) as views,
        sum(carts) as carts,
        min(first_touched_at) as first_touched_at,
        max(last_touched_at) as last_touched_at,
        max(loaded_through) as loaded_through
    from (
        select * from touched
        union all
        select t.device_id, t.product_id, t.views, t.carts, t.first_touched_at, t.last_touched_at, t.loaded_through
        from {{ this }} t
        semi join touched n on t.device_id = n.device_id and t.product_id = n.product_id
    )
    group by device_id, product_id
),
{% else %}
folded as (
    select * from touched
),
{% endif %}

final as (
    select
        device_id,
        product_id,
        cast(views as bigint) as views,
        cast(carts as bigint) as carts,
        first_touched_at,
        last_touched_at,
        loaded_through,
        {{ build_time() }} as built_at
    from folded
)

select * from final
