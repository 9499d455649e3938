-- Recency, frequency and monetary quintile scores as of an as-of date, and the RFM-8 segment.
-- Scores run 1..5, 5 best (most recent, most frequent, highest spend). A dimension is "high"
-- at 4 or 5; the eight segments come from the rule table seed rfm_segment_rules.
with purchases as (
    select * from {{ ref('int_purchases_unioned') }}
),

rules as (
    select * from {{ ref('rfm_segment_rules') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

per_customer as (
    select
        p.customer_id,
        a.as_of_date,
        {{ days_between('cast(max(p.purchased_at) as date)', 'a.as_of_date') }} as recency_days,
        count(*) as frequency,
        {{ exact_sum('p.amount') }} as monetary
    from purchases p
    cross join as_of a
    where cast(p.purchased_at as date) < a.as_of_date
    group by p.customer_id, a.as_of_date
),

scored as (
    select
        *,
        {{ rfm_quintile('recency_days desc') }} as r_score,
        {{ rfm_quintile('frequency') }} as f_score,
        {{ rfm_quintile('monetary') }} as m_score
    from per_customer
),

final as (
    select
        s.customer_id,
        s.as_of_date,
        s.recency_days,
        s.frequency,
        round(s.monetary, 2) as monetary,
        s.r_score,
        s.f_score,
        s.m_score,
        cast(s.r_score as {{ string_type() }}) || cast(s.f_score as {{ string_type() }}) || cast(s.m_score as {{ string_type() }}) as rfm_cell,
        r.rfm_segment
    from scored s
    join rules r
      on r.r_high = (s.r_score >= 4)
     and r.f_high = (s.f_score >= 4)
     and r.m_high = (s.m_score >= 4)
)

select * from final
