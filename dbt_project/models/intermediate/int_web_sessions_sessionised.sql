-- Clickstream sessions (int_device_sessions_sessionised) with their person: a session belongs to
-- the person its device resolves to; devices that never logged in stay anonymous (customer_id
-- null). Only this join is redone, so sessions follow identity changes (a device that logs in
-- later, two people merged) without sessionising the clickstream again.
--
-- A view: its two readers (int_customer_behaviour_summarised, funnel_daily) aggregate it at once,
-- and the join costs them ~0.1 s each at 100k customers (1.2M sessions), while writing it as a
-- table cost 3.7 s of every daily run (1.0 s alone, the rest waiting on the other dbt thread's
-- writes and the checkpoint its drop set off).
{{ config(materialized='view') }}

with sessions as (
    select * from {{ ref('int_device_sessions_sessionised') }}
),

devices as (
    select source_record_id as device_id, customer_id, is_anonymous
    from {{ ref('int_identity_records_matched') }}
    where source = 'web_events'
),

final as (
    select
        s.session_id,
        s.device_id,
        case when coalesce(d.is_anonymous, true) then null else d.customer_id end as customer_id,
        coalesce(d.is_anonymous, true) as is_anonymous,
        s.channel,
        s.session_start,
        s.session_end,
        s.session_date,
        s.duration_seconds,
        s.events,
        s.page_views,
        s.searches,
        s.product_views,
        s.add_to_carts,
        s.checkouts,
        s.purchases,
        s.reached_product_view,
        s.reached_cart,
        s.reached_checkout,
        s.reached_purchase
    from sessions s
    left join devices d using (device_id)
)

select * from final
