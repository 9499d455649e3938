-- Web and app clickstream cut into sessions, one row per session: a device's next event after
-- more than var('session_gap_minutes') of inactivity starts a new session (the source's own
-- session ids differ between web and app and are not trusted). A session belongs to the person
-- its device resolves to; devices that never logged in stay anonymous (customer_id null).
with events as (
    select * from {{ ref('stg_web__events') }}
),

identity as (
    select * from {{ ref('int_identity_records_matched') }}
),

devices as (
    select source_record_id as device_id, customer_id, is_anonymous
    from identity
    where source = 'web_events'
),

gaps as (
    select
        *,
        coalesce(
            occurred_at - lag(occurred_at) over (partition by device_id order by occurred_at, event_id)
                > interval '{{ var("session_gap_minutes") }} minutes',
            true
        ) as starts_session
    from events
),

numbered as (
    select
        *,
        sum(starts_session::integer) over (
            partition by device_id order by occurred_at, event_id rows unbounded preceding
        ) as session_no
    from gaps
),

sessions as (
    select
        device_id,
        session_no,
        min(occurred_at) as session_start,
        max(occurred_at) as session_end,
        {{ arg_min_of('channel', 'occurred_at') }} as channel,
        count(*) as events,
        count(*) filter (where event_type = 'page_view') as page_views,
        count(*) filter (where event_type = 'search') as searches,
        count(*) filter (where event_type = 'product_view') as product_views,
        count(*) filter (where event_type = 'add_to_cart') as add_to_carts,
        count(*) filter (where event_type = 'checkout') as checkouts,
        count(*) filter (where event_type = 'purchase') as purchases
    from numbered
    group by device_id, session_no
),

final as (
    select
        s.device_id || ':' || s.session_no as session_id,
        s.device_id,
        case when coalesce(d.is_anonymous, true) then null else d.customer_id end as customer_id,
        coalesce(d.is_anonymous, true) as is_anonymous,
        s.channel,
        s.session_start,
        s.session_end,
        cast(s.session_start as date) as session_date,
        {{ date_diff_of('second', 's.session_start', 's.session_end') }} as duration_seconds,
        s.events,
        s.page_views,
        s.searches,
        s.product_views,
        s.add_to_carts,
        s.checkouts,
        s.purchases,
        s.product_views > 0 as reached_product_view,
        s.add_to_carts > 0 as reached_cart,
        s.checkouts > 0 as reached_checkout,
        s.purchases > 0 as reached_purchase
    from sessions s
    left join devices d using (device_id)
)

select * from final
