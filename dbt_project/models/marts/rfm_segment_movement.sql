-- Who moved between RFM segments: each customer's segment now (customer_rfm) against the one they
-- had 30, 60, 90 and 180 days before its as-of date, scored exactly as customer_rfm scores
-- (quintiles by percent rank, the rfm_segment_rules seed). The insights app's Segments page
-- reads it; scoring an earlier date on each page view took ~10 s at 1M customers.
with purchases as (
    select * from {{ ref('int_purchases_unioned') }}
),

rules as (
    select * from {{ ref('rfm_segment_rules') }}
),

now_segments as (
    select customer_id, as_of_date, rfm_segment from {{ ref('customer_rfm') }}
),

periods as (
    select 30 as period_days
    union all select 60
    union all select 90
    union all select 180
),

earlier as (
    select p.period_days, {{ dbt.dateadd('day', '-p.period_days', 'max(n.as_of_date)') }} as as_of_date
    from periods p
    cross join now_segments n
    group by p.period_days
),

per_customer as (
    select
        e.period_days,
        p.customer_id,
        {{ days_between('cast(max(p.purchased_at) as date)', 'e.as_of_date') }} as recency_days,
        count(*) as frequency,
        sum(p.amount) as monetary
    from purchases p
    join earlier e on cast(p.purchased_at as date) < e.as_of_date
    group by e.period_days, p.customer_id, e.as_of_date
),

scored as (
    select
        *,
        {{ rfm_quintile('recency_days desc', partition_by='period_days') }} as r_score,
        {{ rfm_quintile('frequency', partition_by='period_days') }} as f_score,
        {{ rfm_quintile('monetary', partition_by='period_days') }} as m_score
    from per_customer
),

segment_before as (
    select s.period_days, s.customer_id, r.rfm_segment
    from scored s
    join rules r
      on r.r_high = (s.r_score >= 4)
     and r.f_high = (s.f_score >= 4)
     and r.m_high = (s.m_score >= 4)
),

final as (
    select
        p.period_days,
        coalesce(b.rfm_segment, 'new (no purchase yet)') as segment_before,
        n.rfm_segment as segment_now,
        count(*) as customers
    from now_segments n
    cross join periods p
    left join segment_before b on b.customer_id = n.customer_id and b.period_days = p.period_days
    group by p.period_days, coalesce(b.rfm_segment, 'new (no purchase yet)'), n.rfm_segment
)

select * from final
