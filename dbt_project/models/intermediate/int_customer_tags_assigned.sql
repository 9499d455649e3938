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
-- behaviour  lifecycle_stage        by purchases before the as-of date: new (first purchase < 90 days ago) /
--                                   won back (latest < 90 days ago after a gap of >= 180 days) /
--                                   active (latest < 90 days ago) / at risk (90-179 days) /
--                                   lapsed (>= 180 days); no purchase, no tag. Campaign audiences
--                                   filter on it and campaign_results breaks lift down by it.
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
    select {{ quantile_cont_of('avg_order_value', 0.9) }} as top_decile from customers
),

profiles as (
    select c.*, a.top_decile
    from customers c
    cross join aov_cut a
),

rules as (
    -- One struct per rule (tag_rule, list_of: cross_engine.sql), one row per rule.
    {% set rule_list -%}
    {% call list_of() %}
            {% call tag_rule('basic', 'age_band') %}age_band{% endcall %},
            {% call tag_rule('basic', 'gender') %}case when gender in ('F', 'M') then gender end{% endcall %},
            {% call tag_rule('basic', 'tenure') %}case
                when tenure_days < 90 then 'new'
                when tenure_days < 365 then 'established'
                when tenure_days >= 365 then 'long-standing' end{% endcall %},
            {% call tag_rule('behaviour', 'preferred_channel') %}preferred_channel{% endcall %},
            {% call tag_rule('behaviour', 'time_of_day') %}preferred_time_of_day{% endcall %},
            {% call tag_rule('behaviour', 'payment_method') %}preferred_payment_method{% endcall %},
            {% call tag_rule('behaviour', 'promotion') %}case
                when promotion_sensitivity >= 0.4 then 'promo hunter'
                when promotion_sensitivity >= 0.15 then 'promo responsive'
                when promotion_sensitivity >= 0 then 'full price' end{% endcall %},
            {% call tag_rule('behaviour', 'activity') %}case
                when last_seen_at is null then 'never seen'
                when cast(last_seen_at as date) >= as_of_date - 30 then 'active 30d'
                when cast(last_seen_at as date) >= as_of_date - 90 then 'active 90d'
                else 'dormant' end{% endcall %},
            {% call tag_rule('behaviour', 'segment') %}segment_name{% endcall %},
            {% call tag_rule('behaviour', 'lifecycle_stage') %}case
                when last_purchase_at is null then null
                when cast(first_purchase_at as date) > as_of_date - 90 then 'new'
                when cast(last_purchase_at as date) > as_of_date - 90
                    and {{ days_between('cast(previous_purchase_at as date)', 'cast(last_purchase_at as date)') }} >= 180 then 'won back'
                when cast(last_purchase_at as date) > as_of_date - 90 then 'active'
                when cast(last_purchase_at as date) > as_of_date - 180 then 'at risk'
                else 'lapsed' end{% endcall %},
            {% call tag_rule('value', 'rfm_segment') %}rfm_segment{% endcall %},
            {% call tag_rule('value', 'clv_tier') %}clv_tier{% endcall %},
            {% call tag_rule('value', 'big_spender') %}case when avg_order_value >= top_decile then 'yes' end{% endcall %},
            {% call tag_rule('value', 'high_value_at_risk') %}case
                when clv_tier in ('platinum', 'gold') and p_alive < 0.5 then 'yes' end{% endcall %},
            {% call tag_rule('risk', 'complaint') %}case
                when open_complaints > 0 then 'open complaint'
                when complaints_90d > 0 then 'recent complaint'
                when complaints >= 2 then 'repeat complainer' end{% endcall %},
            {% call tag_rule('risk', 'voice') %}case when avg_sentiment < -0.3 then 'negative voice' end{% endcall %},
            {% call tag_rule('risk', 'churn_risk') %}case
                when churn_risk_band in ('high', 'medium') then churn_risk_band || ' churn risk' end{% endcall %}
    {% endcall %}
    {%- endset %}
    select
        customer_id,
        as_of_date,
        {{ explode_list(rule_list) }} as rule
    from profiles
),

interests as (
    select customer_id, as_of_date, 'interest' as tag_group, 'category' as tag, trim(category) as value
    from (
        select customer_id, as_of_date, {{ explode_list(split_list('top_categories', "','")) }} as category
        from customers
        where top_categories is not null
    ) as t
    where trim(category) <> ''
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
