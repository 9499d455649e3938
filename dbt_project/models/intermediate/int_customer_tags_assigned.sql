-- The tags each customer holds at the as-of date, one row per customer and tag: the rules below
-- are the whole rule book. Each tag is recomputed from the customer's profile at every build, so
-- when behaviour changes the tag changes. customer_tag_history keeps how the tags moved, and
-- customer_tags the current ones with the date each was first assigned.
--
-- group      tag                    value (rule)
-- basic      age_band               customer_360.age_band
-- basic      gender                 F / M (U is not a tag)
-- basic      tenure                 new (< 90 days since sign-up) / established (< 1 year) / long-standing
-- behaviour  preferred_channel      web / app / store, or omnichannel when no channel has 60% of purchases
-- behaviour  time_of_day            morning / afternoon / evening / night: most purchases
-- behaviour  payment_method         the most used payment method
-- behaviour  promotion              promo hunter (>= 40% of purchases with a promo) / promo responsive (>= 15%) / full price
-- behaviour  activity               active 30d / active 90d / dormant (last seen before that) / never seen
-- behaviour  segment                the behaviour cluster (marts.customer_segments)
-- interest   category               one tag per top-3 category by spend
-- value      rfm_segment            the RFM-8 segment
-- value      clv_tier               platinum / gold / silver / bronze
-- value      big_spender            yes when the average order value is in the top 10%
-- value      high_value_at_risk     yes for platinum or gold CLV with P(alive) < 0.5 (BG/NBD): worth a call
-- risk       complaint              open complaint / recent complaint (90 days) / repeat complainer (>= 2 ever)
-- risk       voice                  negative voice (average text sentiment < -0.3)
-- risk       churn_risk             high / medium churn risk: the champion churn model's band in customer_360
--                                   (low is not a tag; no tag until the churn model has scored)
with customers as (
    select * from {{ ref('customer_360') }}
),

aov_cut as (
    select quantile_cont(avg_order_value, 0.9) as top_decile from customers
),

profiles as (
    select c.*, a.top_decile
    from customers c
    cross join aov_cut a
),

rules as (
    select
        customer_id,
        as_of_date,
        unnest([
            {'tag_group': 'basic', 'tag': 'age_band', 'value': age_band},
            {'tag_group': 'basic', 'tag': 'gender', 'value': case when gender in ('F', 'M') then gender end},
            {'tag_group': 'basic', 'tag': 'tenure', 'value': case
                when tenure_days < 90 then 'new'
                when tenure_days < 365 then 'established'
                when tenure_days >= 365 then 'long-standing' end},
            {'tag_group': 'behaviour', 'tag': 'preferred_channel', 'value': preferred_channel},
            {'tag_group': 'behaviour', 'tag': 'time_of_day', 'value': preferred_time_of_day},
            {'tag_group': 'behaviour', 'tag': 'payment_method', 'value': preferred_payment_method},
            {'tag_group': 'behaviour', 'tag': 'promotion', 'value': case
                when promotion_sensitivity >= 0.4 then 'promo hunter'
                when promotion_sensitivity >= 0.15 then 'promo responsive'
                when promotion_sensitivity >= 0 then 'full price' end},
            {'tag_group': 'behaviour', 'tag': 'activity', 'value': case
                when last_seen_at is null then 'never seen'
                when cast(last_seen_at as date) >= as_of_date - 30 then 'active 30d'
                when cast(last_seen_at as date) >= as_of_date - 90 then 'active 90d'
                else 'dormant' end},
            {'tag_group': 'behaviour', 'tag': 'segment', 'value': segment_name},
            {'tag_group': 'value', 'tag': 'rfm_segment', 'value': rfm_segment},
            {'tag_group': 'value', 'tag': 'clv_tier', 'value': clv_tier},
            {'tag_group': 'value', 'tag': 'big_spender', 'value': case when avg_order_value >= top_decile then 'yes' end},
            {'tag_group': 'value', 'tag': 'high_value_at_risk', 'value': case
                when clv_tier in ('platinum', 'gold') and p_alive < 0.5 then 'yes' end},
            {'tag_group': 'risk', 'tag': 'complaint', 'value': case
                when open_complaints > 0 then 'open complaint'
                when complaints_90d > 0 then 'recent complaint'
                when complaints >= 2 then 'repeat complainer' end},
            {'tag_group': 'risk', 'tag': 'voice', 'value': case when avg_sentiment < -0.3 then 'negative voice' end},
            {'tag_group': 'risk', 'tag': 'churn_risk', 'value': case
                when churn_risk_band in ('high', 'medium') then churn_risk_band || ' churn risk' end}
        ]) as rule
    from profiles
),

interests as (
    select customer_id, as_of_date, 'interest' as tag_group, 'category' as tag, trim(category) as value
    from customers, unnest(string_split(top_categories, ',')) as t(category)
    where top_categories is not null and trim(category) <> ''
),

tags as (
    select customer_id, as_of_date, rule.tag_group, rule.tag, rule.value from rules
    union all
    select * from interests
),

final as (
    select
        customer_id,
        tag_group,
        tag,
        value,
        as_of_date
    from tags
    where value is not null
)

select * from final
