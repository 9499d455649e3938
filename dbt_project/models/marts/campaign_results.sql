-- What each campaign did: contacted (treatment) against held-out people, over the whole campaign
-- and per segment at export time (RFM segment, churn-risk band, lifecycle stage) where both groups
-- have at least var('campaign_min_segment_people') people. Lift is the treatment's conversion
-- rate minus the holdout's, with a 95% interval from the normal approximation to a difference in
-- proportions (unpooled); revenue lift is the difference in revenue per person with a Welch
-- (unequal-variance) 95% interval. An interval that covers zero means no effect detectable at
-- this size.
with outcomes as (
    select * from {{ ref('int_campaign_outcomes_attributed') }}
),

breakdowns as (
    select campaign, campaign_group, 'all' as breakdown, 'all' as segment, converted, revenue from outcomes
    union all
    select campaign, campaign_group, 'rfm_segment', rfm_segment, converted, revenue from outcomes
    union all
    select campaign, campaign_group, 'churn_risk_band', churn_risk_band, converted, revenue from outcomes
    union all
    select campaign, campaign_group, 'lifecycle_stage', lifecycle_stage, converted, revenue from outcomes
),

groups as (
    select
        campaign,
        breakdown,
        segment,
        count(*) filter (where campaign_group = 'treatment') as treatment_people,
        count(*) filter (where campaign_group = 'treatment' and converted) as treatment_conversions,
        avg(revenue) filter (where campaign_group = 'treatment') as treatment_revenue_per_person,
        var_samp(revenue) filter (where campaign_group = 'treatment') as treatment_revenue_var,
        count(*) filter (where campaign_group = 'holdout') as holdout_people,
        count(*) filter (where campaign_group = 'holdout' and converted) as holdout_conversions,
        avg(revenue) filter (where campaign_group = 'holdout') as holdout_revenue_per_person,
        var_samp(revenue) filter (where campaign_group = 'holdout') as holdout_revenue_var
    from breakdowns
    group by campaign, breakdown, segment
),

rates as (
    select
        *,
        cast(treatment_conversions as double) / nullif(treatment_people, 0) as treatment_conversion_rate,
        cast(holdout_conversions as double) / nullif(holdout_people, 0) as holdout_conversion_rate
    from groups
    where breakdown = 'all'
        or (treatment_people >= {{ var('campaign_min_segment_people') }}
            and holdout_people >= {{ var('campaign_min_segment_people') }})
),

errors as (
    select
        *,
        sqrt(
            treatment_conversion_rate * (1 - treatment_conversion_rate) / nullif(treatment_people, 0)
            + holdout_conversion_rate * (1 - holdout_conversion_rate) / nullif(holdout_people, 0)
        ) as lift_se,
        sqrt(
            treatment_revenue_var / nullif(treatment_people, 0) + holdout_revenue_var / nullif(holdout_people, 0)
        ) as revenue_lift_se
    from rates
),

final as (
    select
        campaign,
        breakdown,
        segment,
        treatment_people,
        treatment_conversions,
        treatment_conversion_rate,
        round(treatment_revenue_per_person, 2) as treatment_revenue_per_person,
        holdout_people,
        holdout_conversions,
        holdout_conversion_rate,
        round(holdout_revenue_per_person, 2) as holdout_revenue_per_person,
        treatment_conversion_rate - holdout_conversion_rate as lift,
        treatment_conversion_rate - holdout_conversion_rate - 1.96 * lift_se as lift_low,
        treatment_conversion_rate - holdout_conversion_rate + 1.96 * lift_se as lift_high,
        treatment_revenue_per_person - holdout_revenue_per_person as revenue_lift,
        treatment_revenue_per_person - holdout_revenue_per_person - 1.96 * revenue_lift_se as revenue_lift_low,
        treatment_revenue_per_person - holdout_revenue_per_person + 1.96 * revenue_lift_se as revenue_lift_high,
        {{ var('campaign_window_days') }} as window_days
    from errors
)

select * from final
