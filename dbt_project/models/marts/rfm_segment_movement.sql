-- Who moved between RFM segments: each customer's segment now (customer_rfm) against the one they
-- had 30, 60, 90 and 180 days before its as-of date, scored exactly as customer_rfm scores
-- (quintiles by percent rank, the rfm_segment_rules seed). The insights app's Segments page
-- reads it; scoring an earlier date on each page view took ~10 s at 1M customers.
{%- set period_days = [30, 60, 90, 180] %}

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
    {%- for days in period_days %}
    {% if not loop.first %}union all {% endif %}select {{ days }} as period_days
    {%- endfor %}
),

-- The earlier as-of dates, one column per look-back: every purchase is read once below, each
-- period counted under its own filter (the periods nest: a purchase before the 180-day date is
-- before the others too). Joined to the dates instead, each purchase was copied once per period
-- it falls in and the copies grouped (4.6-4.9 s -> 3.3-3.7 s alone at 1M customers, sums exact).
bounds as (
    select
        {%- for days in period_days %}
        {{ add_days('max(as_of_date)', -days) }} as as_of_{{ days }}{{ "," if not loop.last }}
        {%- endfor %}
    from now_segments
),

wide as (
    select
        p.customer_id,
        {%- for days in period_days %}
        {%- set before = "cast(p.purchased_at as date) < b.as_of_" ~ days %}
        max(p.purchased_at) filter (where {{ before }}) as last_purchase_{{ days }},
        count(*) filter (where {{ before }}) as frequency_{{ days }},
        {{ exact_sum('p.amount', before) }} as monetary_{{ days }}{{ "," if not loop.last }}
        {%- endfor %}
    from purchases p
    cross join bounds b
    where cast(p.purchased_at as date) < b.as_of_{{ period_days | min }}
    group by p.customer_id
),

per_customer as (
    {%- for days in period_days %}
    {% if not loop.first %}union all
    {% endif -%}
    select
        {{ days }} as period_days,
        w.customer_id,
        {{ days_between('cast(w.last_purchase_' ~ days ~ ' as date)', 'b.as_of_' ~ days) }} as recency_days,
        w.frequency_{{ days }} as frequency,
        w.monetary_{{ days }} as monetary
    from wide w
    cross join bounds b
    where w.frequency_{{ days }} > 0
    {%- endfor %}
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
