-- One row per campaign and person assigned to it (activation.campaign_assignments): their group,
-- the segments they were in when first exported, and what they bought in the campaign's window,
-- [exported_at, exported_at + var('campaign_window_days') days). Purchases before the export or
-- after the window are not the campaign's; a held-out person's purchases count for the holdout,
-- the baseline the treatment is compared with. Segments come from export time, not from now: a
-- purchase the campaign caused must not move its buyer into another segment of the comparison.
with assignments as (
    select * from {{ source_or_empty('activation', 'campaign_assignments', {
        'campaign': 'varchar', 'customer_id': 'varchar', 'campaign_group': 'varchar',
        'stratum': 'varchar', 'churn_risk_band': 'varchar', 'rfm_segment': 'varchar',
        'lifecycle_stage': 'varchar', 'holdout_share': 'double', 'exported_at': 'timestamp'}) }}
),

purchases as (
    select * from {{ ref('int_purchases_unioned') }}
),

in_window as (
    select
        a.campaign,
        a.customer_id,
        count(p.purchase_id) as purchases,
        coalesce(sum(p.amount), 0) as revenue
    from assignments a
    join purchases p
        on p.customer_id = a.customer_id
        and p.purchased_at >= a.exported_at
        and p.purchased_at < {{ add_days('a.exported_at', var('campaign_window_days')) }}
    group by a.campaign, a.customer_id
),

final as (
    select
        a.campaign,
        a.customer_id,
        a.campaign_group,
        a.stratum,
        a.churn_risk_band,
        a.rfm_segment,
        coalesce(a.lifecycle_stage, 'unknown') as lifecycle_stage,
        a.exported_at,
        coalesce(w.purchases, 0) > 0 as converted,
        coalesce(w.purchases, 0) as purchases,
        cast(coalesce(w.revenue, 0) as double) as revenue
    from assignments a
    left join in_window w on w.campaign = a.campaign and w.customer_id = a.customer_id
)

select * from final
