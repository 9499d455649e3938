-- Every online order and store receipt as a purchase, one row per purchase, before anyone is
-- attached to it (int_purchases_unioned joins the identity). Cancelled orders are kept here,
-- flagged, so that an order re-sent as cancelled replaces its earlier version.
--
-- Incremental: a run reads only the orders and till receipts with rows loaded since the last
-- run; a receipt's lines are summed again from all its lines, so a receipt whose lines arrive
-- in two loads is still one purchase. Replaced by purchase_id.
{{ config(
    materialized=fact_materialization(),
    unique_key='purchase_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
) }}

with orders as (
    -- Null keys could never be replaced by the delete and would pile up run after run; the
    -- gates quarantine such rows, these filters keep the model safe without them.
    select * from {{ ref('stg_ecommerce__orders') }}
    where order_id is not null
),

pos as (
    select * from {{ ref('stg_pos__transaction_lines') }}
    where transaction_id is not null
),

{% if is_incremental() %}
watermark as (
    select coalesce(max(loaded_through), cast('1900-01-01' as timestamp)) as loaded_through
    from {{ this }}
),

orders_in_scope as (
    select * from orders
    where _loaded_at > (select loaded_through from watermark)
),

pos_in_scope as (
    select * from pos
    where transaction_id in (
        select transaction_id from pos where _loaded_at > (select loaded_through from watermark)
    )
),
{% else %}
orders_in_scope as (
    select * from orders
),

pos_in_scope as (
    select * from pos
),
{% endif %}

online as (
    select
        'order:' || order_id as purchase_id,
        'ecommerce_orders' as source,
        order_id as source_record_id,
        channel,
        ordered_at as purchased_at,
        amount,
        payment_method,
        promo_code is not null as used_promo,
        -- An order without a status is not counted as a purchase either.
        not coalesce(status <> 'cancelled', false) as is_cancelled,
        _loaded_at as loaded_through
    from orders_in_scope
),

in_store as (
    select
        'pos:' || transaction_id as purchase_id,
        'pos_transactions' as source,
        transaction_id as source_record_id,
        'store' as channel,
        min(occurred_at) as purchased_at,
        sum(line_amount) as amount,
        {{ any_value_of('payment_method') }} as payment_method,
        bool_or(promo_code is not null) as used_promo,
        false as is_cancelled,
        max(_loaded_at) as loaded_through
    from pos_in_scope
    group by transaction_id
),

final as (
    select *, {{ build_time() }} as built_at from online
    union all
    select *, {{ build_time() }} as built_at from in_store
)

select * from final
