-- The clickstream rolled up once per device, visit (the source's own session id) and the account
-- the device was logged in as (null before a login): when the visit started, first carted and
-- first paid. Two readers used to group the whole clickstream for this on every run (the identity
-- graph, for the accounts each device logged in as; churn_features, for its visits); they now
-- read these rows, about a seventh as many as events.
--
-- Incremental on DuckDB (a table on Spark, as the other incremental facts): every column is a
-- min, a max or a count, so a run folds the events loaded since the last run (`loaded_through`,
-- the watermark) into the rows of the visits they belong to and replaces just those visits
-- (delete+insert on device and visit). Late events only move a min or a max. Nothing here is
-- attributed to a person, so identity changes need no rebuild; an erasure deletes the device's
-- rows like those of any derived table, and source rows removed any other way make the next run
-- rebuild the table (the pre-hook, macros/incremental_facts.sql).
{{ config(
    materialized=fact_materialization(),
    unique_key=['device_id', 'session_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{{ reset_if_source_rows_vanished('sum(events)', ref('stg_web__events'), 'device_id is not null and session_id is not null') }}",
) }}

with events as (
    -- The loader rejects events without a device or a session (both required by the contract);
    -- the filter keeps the delete key safe without it, as in int_device_sessions_sessionised.
    select * from {{ ref('stg_web__events') }}
    where device_id is not null and session_id is not null
    {% if is_incremental() %}
        and _loaded_at > {{ loaded_watermark() }}
    {% endif %}
),

visits as (
    select
        device_id,
        session_id,
        account_id,
        min(occurred_at) as first_event_at,
        min(occurred_at) filter (where event_type = 'add_to_cart') as first_cart_at,
        min(occurred_at) filter (where event_type = 'purchase') as first_payment_at,
        count(*) as events,
        max(_loaded_at) as loaded_through
    from events
    group by device_id, session_id, account_id
),

{% if is_incremental() %}
-- The stored rows of the visits the new events belong to, folded with them.
folded as (
    select
        device_id,
        session_id,
        account_id,
        min(first_event_at) as first_event_at,
        min(first_cart_at) as first_cart_at,
        min(first_payment_at) as first_payment_at,
        sum(events) as events,
        max(loaded_through) as loaded_through
    from (
        select * from visits
        union all
        select t.device_id, t.session_id, t.account_id, t.first_event_at, t.first_cart_at,
            t.first_payment_at, t.events, t.loaded_through
        from {{ this }} t
        semi join (select distinct device_id, session_id from visits) v
            on t.device_id = v.device_id and t.session_id = v.session_id
    )
    group by device_id, session_id, account_id
),
{% else %}
folded as (
    select * from visits
),
{% endif %}

final as (
    select
        device_id,
        session_id,
        account_id,
        first_event_at,
        first_cart_at,
        first_payment_at,
        cast(events as bigint) as events,
        loaded_through,
        {{ build_time() }} as built_at
    from folded
)

select * from final
