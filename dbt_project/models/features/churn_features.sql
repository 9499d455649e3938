-- Churn features, one row per (customer_id, as_of_date), point-in-time correct: every feature
-- uses only records strictly before as_of_date. Snapshots run back from the as-of date in
-- steps of var('churn_snapshot_step_days'); `churned` is 1 when the customer makes no purchase
-- in [as_of_date, as_of_date + var('churn_horizon_days')), null while that window is not over.
-- Feature names and meanings are ml.churn.FEATURES.
{% set horizon = var('churn_horizon_days', 90) | int %}
{% set step = var('churn_snapshot_step_days', 90) | int %}
{% set snapshots = var('churn_snapshots', 5) | int %}

-- The purchases and the identity records are read by name where used, not through CTEs: DuckDB
-- materialises a CTE read more than once, and these were copied whole (19M records at 1M
-- customers) before each join kept its one source (48.5 -> 42.9 s, 7.5 -> 6.1 GB alone at L).
{% set purchases = ref('int_purchases_unioned') %}
{% set identity = ref('int_identity_records_matched') %}

-- The clickstream as visits (one row per device, visit and account), not as events.
with visits as (
    select * from {{ ref('int_device_visits_summarised') }}
),

tickets as (
    select * from {{ ref('stg_service__tickets') }}
),

reviews as (
    select * from {{ ref('stg_reviews__product_reviews') }}
),

crm as (
    select * from {{ ref('stg_crm__customers') }}
),

customers as (
    select distinct customer_id from {{ identity }} where not is_anonymous
),

-- The end of the observed data, independent of var('as_of_date'): labels need the future.
data_end as (
    select cast(max(purchased_at) as date) + 1 as data_end_date from {{ purchases }}
),

snapshots as (
    select cast({{ as_of_date() }} - cast(k * {{ step }} as integer) as date) as as_of_date, k = 0 as is_latest
    from range({{ snapshots }}) as r(k)
),

customer_purchases as (
    select customer_id, purchased_at, cast(purchased_at as date) as day, coalesce(amount, 0) as amount, channel, used_promo
    from {{ purchases }}
    where customer_id is not null
),

-- Web/app sessions (the source's visit ids) belong to the customer of the device's identity
-- record. Each is the min over the visit's rows, as it was over its events.
sessions as (
    select
        i.customer_id,
        v.session_id,
        min(v.first_event_at) as started_at,
        min(v.first_cart_at) as carted_at,
        min(v.first_payment_at) as paid_at
    from visits v
    join {{ identity }} i on i.source = 'web_events' and i.source_record_id = v.device_id
    where not i.is_anonymous
    group by i.customer_id, v.session_id
),

customer_tickets as (
    select i.customer_id, t.opened_at, t.category
    from tickets t
    join {{ identity }} i on i.source = 'service_tickets' and i.source_record_id = t.ticket_id
),

customer_reviews as (
    select i.customer_id, r.created_at, r.score
    from reviews r
    join {{ identity }} i on i.source = 'product_reviews' and i.source_record_id = r.review_id
),

customer_signups as (
    select i.customer_id, cast(c.signup_date as timestamp) as signed_up_at
    from crm c
    join {{ identity }} i on i.source = 'crm_customers' and i.source_record_id = c.customer_ref
),

-- The purchases and sessions enter as each customer's first (22.9M rows at 1M customers, grouped
-- twice otherwise): at 1M customers, two alternating pairs, 38.1-38.3 s against 39.3-40.6 s.
first_seen as (
    select customer_id, min(seen_at) as first_seen_at
    from (
        select customer_id, min(purchased_at) as seen_at from customer_purchases group by customer_id
        union all select customer_id, min(started_at) from sessions group by customer_id
        union all select customer_id, opened_at from customer_tickets
        union all select customer_id, created_at from customer_reviews
        union all select customer_id, signed_up_at from customer_signups
    )
    group by customer_id
),

-- A customer enters a snapshot once known; the latest snapshot holds every customer so that
-- everyone gets a score.
spine as (
    select c.customer_id, s.as_of_date, f.first_seen_at
    from customers c
    cross join snapshots s
    left join first_seen f using (customer_id)
    where s.is_latest or f.first_seen_at < s.as_of_date
),

-- The purchase, visit and label aggregates join each row with the snapshots it precedes (five
-- dates), not with the spine: a customer's row that the spine does not hold is dropped by the
-- final left joins, and every row these find has a record before its as-of date, so its customer
-- is in that snapshot's spine. The join with the spine was a hash join on the customer's id of
-- every purchase and session with each of their snapshots. At 1M customers, alone, three
-- alternating pairs: 39.2-49.4 s (77-96 CPU-s) against 35.3-40.8 s (70-80 CPU-s) this way, the
-- same rows and values (sums differ in the last bits from run to run either way: DuckDB adds in
-- parallel, in no fixed order).
purchase_features as (
    select
        p.customer_id,
        s.as_of_date,
        max(p.day) as last_purchase_day,
        count(*) filter (where p.day >= s.as_of_date - 90) as frequency_90d,
        count(*) filter (where p.day >= s.as_of_date - 365) as frequency_365d,
        count(*) filter (where p.day >= s.as_of_date - 180 and p.day < s.as_of_date - 90) as frequency_prev_90d,
        sum(p.amount) filter (where p.day >= s.as_of_date - 90) as monetary_90d,
        sum(p.amount) filter (where p.day >= s.as_of_date - 365) as monetary_365d,
        sum(p.amount) filter (where p.day >= s.as_of_date - 180 and p.day < s.as_of_date - 90) as monetary_prev_90d,
        count(*) filter (where p.day >= s.as_of_date - 365 and p.channel = 'store') as store_orders_365d,
        count(*) filter (where p.day >= s.as_of_date - 365 and p.channel = 'app') as app_orders_365d,
        count(*) filter (where p.day >= s.as_of_date - 365 and p.used_promo) as promo_orders_365d,
        count(*) as frequency_all,
        min(p.day) as first_purchase_day,
        count(*) filter (where p.day >= s.as_of_date - 180) as frequency_180d,
        -- The coming 90 days a year ago: how this customer shopped in the season being predicted
        -- (the Singles' Day peak for an October as-of date).
        count(*) filter (
            where p.day >= s.as_of_date - 365 and p.day < s.as_of_date - 365 + {{ horizon }}
        ) as frequency_same_window_last_year,
        -- Orders in the run-ups to Singles' Day (11-11) and the 618 sale: promotion-driven buying.
        count(*) filter (
            where (extract(month from p.day) = 11 and extract(day from p.day) <= 11)
                or (extract(month from p.day) = 6 and extract(day from p.day) <= 18)
        ) as sale_orders_all
    from customer_purchases p
    join snapshots s on p.purchased_at < s.as_of_date
    group by p.customer_id, s.as_of_date
),

visit_features as (
    select
        v.customer_id,
        s.as_of_date,
        max(v.started_at) as last_visit_at,
        count(*) filter (where v.started_at >= s.as_of_date - 30) as visits_30d,
        count(*) filter (where v.started_at >= s.as_of_date - 90) as visits_90d,
        count(*) filter (where v.started_at >= s.as_of_date - 45) as visits_last_45d,
        count(*) filter (where v.started_at >= s.as_of_date - 90 and v.started_at < s.as_of_date - 45) as visits_prev_45d,
        count(*) filter (where v.started_at >= s.as_of_date - 90 and v.carted_at < s.as_of_date) as carts_90d,
        -- A payment after the as-of date is not known yet: that cart counts as abandoned.
        count(*) filter (
            where v.started_at >= s.as_of_date - 90 and v.carted_at < s.as_of_date
                and (v.paid_at is null or v.paid_at >= s.as_of_date)
        ) as abandoned_carts_90d,
        count(*) filter (where v.started_at >= s.as_of_date - 365) as visits_365d,
        count(*) filter (where v.started_at >= s.as_of_date - 180 and v.started_at < s.as_of_date - 90) as visits_prev_90d
    from sessions v
    join snapshots s on v.started_at < s.as_of_date
    group by v.customer_id, s.as_of_date
),

ticket_features as (
    select
        s.customer_id,
        s.as_of_date,
        count(*) as tickets_180d,
        count(*) filter (where t.category = 'complaint') as complaints_180d,
        count(*) filter (
            where t.opened_at >= s.as_of_date - 90 and t.category in ('complaint', 'refund')
        ) as complaints_refunds_90d,
        max(t.opened_at) as last_ticket_at
    from spine s
    join customer_tickets t
        on t.customer_id = s.customer_id and t.opened_at < s.as_of_date and t.opened_at >= s.as_of_date - 180
    group by s.customer_id, s.as_of_date
),

review_features as (
    select
        s.customer_id,
        s.as_of_date,
        avg(r.score) as avg_review_score,
        count(*) filter (where r.created_at >= s.as_of_date - 120) as reviews_120d,
        avg(r.score) filter (where r.created_at >= s.as_of_date - 120) as avg_review_score_120d
    from spine s
    join customer_reviews r on r.customer_id = s.customer_id and r.created_at < s.as_of_date
    group by s.customer_id, s.as_of_date
),

future_purchases as (
    select p.customer_id, s.as_of_date, count(*) as purchases_in_horizon
    from customer_purchases p
    join snapshots s on p.day >= s.as_of_date and p.day < s.as_of_date + {{ horizon }}
    group by p.customer_id, s.as_of_date
),

labels as (
    select
        s.customer_id,
        s.as_of_date,
        case
            when s.as_of_date + {{ horizon }} > d.data_end_date then null
            when f.purchases_in_horizon > 0 then 0
            else 1
        end as churned
    from spine s
    cross join data_end d
    left join future_purchases f using (customer_id, as_of_date)
),

final as (
    select
        s.customer_id,
        s.as_of_date,
        {{ date_diff_of('day', 'p.last_purchase_day', 's.as_of_date') }} as recency_days,
        coalesce(p.frequency_90d, 0) as frequency_90d,
        coalesce(p.frequency_365d, 0) as frequency_365d,
        coalesce(p.monetary_90d, 0) as monetary_90d,
        coalesce(p.monetary_365d, 0) as monetary_365d,
        coalesce(p.frequency_90d, 0) - coalesce(p.frequency_prev_90d, 0) as frequency_trend,
        coalesce(p.monetary_90d, 0) - coalesce(p.monetary_prev_90d, 0) as spend_trend,
        coalesce(v.visits_30d, 0) as visits_30d,
        coalesce(v.visits_90d, 0) as visits_90d,
        coalesce(v.visits_last_45d, 0) - coalesce(v.visits_prev_45d, 0) as visit_trend,
        v.abandoned_carts_90d / nullif(v.carts_90d, 0) as cart_abandon_rate_90d,
        coalesce(t.tickets_180d, 0) as tickets_180d,
        coalesce(t.complaints_180d, 0) as complaints_180d,
        r.avg_review_score,
        -- Stand-in until text sentiment is available: the star score rescaled, 1 -> -1, 5 -> 1.
        (r.avg_review_score - 3) / 2 as review_sentiment,
        case
            when s.first_seen_at < s.as_of_date then {{ date_diff_of('day', 'cast(s.first_seen_at as date)', 's.as_of_date') }}
        end as tenure_days,
        p.store_orders_365d / nullif(p.frequency_365d, 0) as store_share,
        p.app_orders_365d / nullif(p.frequency_365d, 0) as app_share,
        p.promo_orders_365d / nullif(p.frequency_365d, 0) as promo_share,
        {{ date_diff_of('day', 'cast(v.last_visit_at as date)', 's.as_of_date') }} as days_since_last_visit,
        p.monetary_365d / nullif(p.frequency_365d, 0) as avg_order_value,
        coalesce(p.frequency_all, 0) as frequency_all,
        -- The purchase rate as a ratio: trees approximate a ratio of two features poorly.
        case
            when s.first_seen_at < s.as_of_date then coalesce(p.frequency_all, 0) / nullif(
                {{ date_diff_of('day', 'cast(s.first_seen_at as date)', 's.as_of_date') }}, 0
            )
        end as order_rate,
        {{ date_diff_of('day', 'p.first_purchase_day', 's.as_of_date') }} as first_purchase_days,
        coalesce(p.frequency_180d, 0) as frequency_180d,
        coalesce(p.frequency_same_window_last_year, 0) as frequency_same_window_last_year,
        coalesce(p.sale_orders_all, 0) as sale_orders_all,
        coalesce(v.visits_365d, 0) as visits_365d,
        coalesce(v.visits_prev_90d, 0) as visits_prev_90d,
        coalesce(t.complaints_refunds_90d, 0) as complaints_refunds_90d,
        {{ date_diff_of('day', 'cast(t.last_ticket_at as date)', 's.as_of_date') }} as days_since_last_ticket_180d,
        coalesce(r.reviews_120d, 0) as reviews_120d,
        r.avg_review_score_120d,
        l.churned
    from spine s
    left join purchase_features p using (customer_id, as_of_date)
    left join visit_features v using (customer_id, as_of_date)
    left join ticket_features t using (customer_id, as_of_date)
    left join review_features r using (customer_id, as_of_date)
    left join labels l using (customer_id, as_of_date)
)

select * from final
