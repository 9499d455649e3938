-- Web and app clickstream cut into sessions per device, one row per session: a device's next
-- event after more than var('session_gap_minutes') of inactivity starts a new session (the
-- source's own session ids differ between web and app and are not trusted).
--
-- Incremental: the clickstream is the largest fact, so a run only sessionises what events
-- loaded since the last run can change. New events (late ones arrive out of order) can extend,
-- merge or split a device's sessions, but only from the first session that ends within the
-- inactivity gap before the earliest new event: each changed device is cut there, its events
-- from the cut on are sessionised again (numbered on from the sessions before the cut), and
-- they replace the device's sessions from the cut on (macros/incremental_facts.sql). Nobody is
-- attributed here (int_web_sessions_sessionised joins the identity), so a device that resolves
-- to another person later needs no rebuild.
{{ config(
    materialized=fact_materialization(),
    incremental_strategy='replace_tail',
    tail_partitioned_by='device_id',
    tail_ordered_by='session_start',
    on_schema_change='append_new_columns',
) }}

-- A null device could never be matched by the replace and would be inserted again on every
-- run; the web_events gate quarantines such rows, this keeps the model safe without it.
-- Read by name where used, not through a CTE: DuckDB materialises a CTE read twice, and the
-- incremental path reads the clickstream twice (the new events, then the scoped devices' events),
-- so it copied all 89M events at 1M customers before scoping them (3.7-5.5 s -> 0.5 s for the
-- scoped events of a week's 1.1M new ones, the same rows).
{% set events %}(select * from {{ ref('stg_web__events') }} where device_id is not null){% endset %}

with
{% if is_incremental() %}
new_events as (
    select device_id, min(occurred_at) as first_new_at
    from {{ events }} events
    where _loaded_at > {{ loaded_watermark(as_value=true) }}
    group by device_id
),

previous as (
    select device_id, session_start, session_end
    from {{ this }}
    where device_id in (select device_id from new_events)
),

cuts as (
    -- The earliest session a new event can join (it ends less than the gap before the new
    -- event, or later), or the new event itself when it joins none.
    select
        n.device_id,
        least(
            n.first_new_at,
            coalesce(
                min(p.session_start) filter (
                    where p.session_end >= n.first_new_at - interval '{{ var("session_gap_minutes") }} minutes'
                ),
                n.first_new_at
            )
        ) as cut_at
    from new_events n
    left join previous p using (device_id)
    group by n.device_id, n.first_new_at
),

kept as (
    select c.device_id, c.cut_at, count(p.session_start) as sessions_before
    from cuts c
    left join previous p on p.device_id = c.device_id and p.session_start < c.cut_at
    group by c.device_id, c.cut_at
),

scoped as (
    select e.*, k.sessions_before
    from {{ events }} e
    join kept k on k.device_id = e.device_id and e.occurred_at >= k.cut_at
),
{% else %}
scoped as (
    select *, 0 as sessions_before from {{ events }} events
),
{% endif %}

-- Both windows order by time alone, with no tie-breaker: a string tie-breaker (event_id) made
-- the two sorts of the whole clickstream a quarter dearer. Ties stay exact: of a device's events
-- at one instant only the first (in whichever order) can start a session (the others see a zero
-- gap), and the running count is a range frame, so all events at that instant count that start
-- and land in the same session, whatever order each window put them in.
gaps as (
    select
        *,
        coalesce(
            occurred_at - lag(occurred_at) over (partition by device_id order by occurred_at)
                > interval '{{ var("session_gap_minutes") }} minutes',
            true
        ) as starts_session
    from scoped
),

numbered as (
    select
        *,
        sessions_before + sum(starts_session::integer) over (
            partition by device_id order by occurred_at
            range between unbounded preceding and current row
        ) as session_no
    from gaps
),

-- A session's channel is its first event's. Two first events at one instant on two channels (181
-- at 1M customers) give the smaller channel name: with the time alone as the key, DuckDB kept
-- whichever row its threads met first, and two builds of the same events differed.
sessions as (
    select
        device_id,
        session_no,
        min(occurred_at) as session_start,
        max(occurred_at) as session_end,
        {{ arg_min_of('channel', ['occurred_at', 'channel']) }} as channel,
        count(*) as events,
        count(*) filter (where event_type = 'page_view') as page_views,
        count(*) filter (where event_type = 'search') as searches,
        count(*) filter (where event_type = 'product_view') as product_views,
        count(*) filter (where event_type = 'add_to_cart') as add_to_carts,
        count(*) filter (where event_type = 'checkout') as checkouts,
        count(*) filter (where event_type = 'purchase') as purchases,
        max(_loaded_at) as loaded_through
    from numbered
    group by device_id, session_no
),

final as (
    select
        device_id || ':' || session_no as session_id,
        device_id,
        channel,
        session_start,
        session_end,
        cast(session_start as date) as session_date,
        {{ date_diff_of('second', 'session_start', 'session_end') }} as duration_seconds,
        events,
        page_views,
        searches,
        product_views,
        add_to_carts,
        checkouts,
        purchases,
        product_views > 0 as reached_product_view,
        add_to_carts > 0 as reached_cart,
        checkouts > 0 as reached_checkout,
        purchases > 0 as reached_purchase,
        loaded_through,
        {{ build_time() }} as built_at
    from sessions
)

select * from final
