-- The web/app purchase funnel per day, channel and RFM segment: sessions (browse) and how many
-- of them reached a product view, the cart, checkout and a purchase, with the conversion from
-- each step to the next. Sessions come from int_web_sessions_sessionised (a new session after
-- var('session_gap_minutes') of inactivity); anonymous sessions form the segment 'anonymous',
-- known visitors without a purchase yet 'no purchase yet'.
with sessions as (
    select * from {{ ref('int_web_sessions_sessionised') }}
),

rfm as (
    select * from {{ ref('customer_rfm') }}
),

segmented as (
    select
        s.*,
        case
            when s.is_anonymous then 'anonymous'
            else coalesce(r.rfm_segment, 'no purchase yet')
        end as rfm_segment
    from sessions s
    left join rfm r using (customer_id)
),

counted as (
    select
        session_date,
        channel,
        rfm_segment,
        count(*) as sessions,
        count(*) filter (where reached_product_view) as product_view_sessions,
        count(*) filter (where reached_cart) as cart_sessions,
        count(*) filter (where reached_checkout) as checkout_sessions,
        count(*) filter (where reached_purchase) as purchase_sessions
    from segmented
    group by all
),

final as (
    select
        session_date,
        channel,
        rfm_segment,
        sessions,
        product_view_sessions,
        cart_sessions,
        checkout_sessions,
        purchase_sessions,
        round(product_view_sessions / sessions, 4) as view_rate,
        round(cart_sessions / nullif(product_view_sessions, 0), 4) as cart_rate,
        round(checkout_sessions / nullif(cart_sessions, 0), 4) as checkout_rate,
        round(purchase_sessions / nullif(checkout_sessions, 0), 4) as purchase_rate,
        round(purchase_sessions / sessions, 4) as conversion_rate
    from counted
)

select * from final
