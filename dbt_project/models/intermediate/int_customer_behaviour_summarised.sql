-- How each customer buys, one row per customer with a purchase or a web session: channel mix,
-- time of day, payment, promotion sensitivity, top categories and browsing. The input of
-- customer_360's behaviour columns and of the behaviour segments (marts.customer_segments).
-- Time of day (local time of the purchase): night 0-6h, morning 6-12h, afternoon 12-18h,
-- evening 18-24h.
--
-- Incremental on DuckDB (a table on Spark, as the other incremental facts), as
-- int_customer_categories_ranked: a row depends only on its customer's purchases, categories and
-- sessions, so a run recomputes the customers whose inputs were written since its last build
-- (`built_at`; customers_changed_since in macros/incremental_facts.sql, and the people of the
-- devices whose sessions were written since) and keeps the others' rows. A marker row per
-- recomputed customer (built_at null) deletes their old row: a customer left with no purchase
-- and no session has none.
{{ config(
    materialized=fact_materialization(),
    incremental_strategy='replace_marked',
    marked_partitioned_by='customer_id',
    marked_by='built_at',
    inserted_when='true',
    on_schema_change='sync_all_columns',
) }}
{%- set state = is_incremental() and identity_state_readable(['built_at']) %}
{%- set purchases_unioned = ref('int_purchases_unioned') %}
{%- set categories_ranked = ref('int_customer_categories_ranked') %}
{%- set device_sessions = ref('int_device_sessions_sessionised') %}
{%- set identity = ref('int_identity_records_matched') %}
{%- set recorded = ref('int_purchases_recorded') %}
{%- set ids = ref('int_customer_ids_assigned') %}
{%- if state %}
{%- set since = previous_build_time() %}
{%- endif %}

with
{% if state %}
scope as (
    {{ customers_changed_since(since, [purchases_unioned, categories_ranked], identity, recorded, ids) }}
    union
    select i.customer_id
    from {{ device_sessions }} s
    join {{ identity }} i on i.source = 'web_events' and i.source_record_id = s.device_id
    where s.built_at > {{ since }}
),
{% endif %}

purchases as (
    select * from {{ purchases_unioned }}
    {% if state %}where customer_id in (select customer_id from scope){% endif %}
),

categories as (
    select * from {{ categories_ranked }}
    {% if state %}where customer_id in (select customer_id from scope){% endif %}
),

-- Sessions with their person (the view joins the sessions to the identity); a run reads those of
-- the customers it recomputes. Filtering the view costs 1.4-1.7 s at 1M customers for a week's
-- 189k customers, against 0.8-1.1 s for the same join written here again: not worth a second copy.
sessions as (
    select * from {{ ref('int_web_sessions_sessionised') }}
    where not is_anonymous
        {% if state %}and customer_id in (select customer_id from scope){% endif %}
),

timed as (
    select
        *,
        case
            when hour(purchased_at) < 6 then 'night'
            when hour(purchased_at) < 12 then 'morning'
            when hour(purchased_at) < 18 then 'afternoon'
            else 'evening'
        end as time_of_day
    from purchases
),

buying as (
    select
        customer_id,
        count(*) as purchases,
        avg((channel = 'web')::integer) as share_web,
        avg((channel = 'app')::integer) as share_app,
        avg((channel = 'store')::integer) as share_store,
        avg((time_of_day = 'morning')::integer) as share_morning,
        avg((time_of_day = 'afternoon')::integer) as share_afternoon,
        avg((time_of_day = 'evening')::integer) as share_evening,
        avg((time_of_day = 'night')::integer) as share_night,
        avg(coalesce(used_promo, false)::integer) as promotion_sensitivity,
        max(purchased_at) as last_purchase_at
    from timed
    group by customer_id
),

-- Ties go to the alphabetically first value, so reruns agree.
favourite_time as (
    select customer_id, {{ arg_min_of('time_of_day', ['-n', 'time_of_day']) }} as preferred_time_of_day
    from (select customer_id, time_of_day, count(*) as n from timed group by all)
    group by customer_id
),

favourite_payment as (
    select customer_id, {{ arg_min_of('payment_method', ['-n', 'payment_method']) }} as preferred_payment_method
    from (select customer_id, payment_method, count(*) as n from timed where payment_method is not null group by all)
    group by customer_id
),

top_categories as (
    select
        customer_id,
        min(category) filter (where category_rank = 1) as top_category,
        {{ ordered_list_agg('category', 'category_rank', 'category_rank <= 3') }} as top_categories,
        count(*) as categories_bought
    from categories
    group by customer_id
),

browsing as (
    select
        customer_id,
        count(*) as web_sessions,
        count(*) filter (where reached_product_view) as product_view_sessions,
        count(*) filter (where reached_purchase) as purchase_sessions,
        max(session_end) as last_web_activity_at
    from sessions
    group by customer_id
),

customers as (
    select customer_id from buying
    union
    select customer_id from browsing
),

final as (
    select
        c.customer_id,
        coalesce(b.purchases, 0) as purchases,
        b.share_web,
        b.share_app,
        b.share_store,
        case
            when b.customer_id is null then null
            when greatest(b.share_web, b.share_app, b.share_store) < 0.6 then 'omnichannel'
            when b.share_app >= greatest(b.share_web, b.share_store) then 'app'
            when b.share_web >= b.share_store then 'web'
            else 'store'
        end as preferred_channel,
        b.share_morning,
        b.share_afternoon,
        b.share_evening,
        b.share_night,
        t.preferred_time_of_day,
        p.preferred_payment_method,
        b.promotion_sensitivity,
        k.top_category,
        k.top_categories,
        coalesce(k.categories_bought, 0) as categories_bought,
        coalesce(w.web_sessions, 0) as web_sessions,
        coalesce(w.purchase_sessions, 0) as web_purchase_sessions,
        -- Web sessions per session that ended in a purchase; null without a web purchase.
        round(w.web_sessions / nullif(w.purchase_sessions, 0), 2) as browse_to_buy_ratio,
        b.last_purchase_at,
        w.last_web_activity_at,
        {{ build_time() }} as built_at
    from customers c
    left join buying b using (customer_id)
    left join favourite_time t using (customer_id)
    left join favourite_payment p using (customer_id)
    left join top_categories k using (customer_id)
    left join browsing w using (customer_id)
    {% if is_incremental() %}
    union all
    -- Markers (see the top): they delete the old row of every customer recomputed; not inserted.
    select customer_id{% for column in range(21) %}, null{% endfor %}
    from {% if state %}scope{% else %}(select distinct customer_id from {{ this }}){% endif %}
    {% endif %}
)

select * from final
