-- Every purchased product line with its customer and category (orders and store receipts).
--
-- Incremental on DuckDB (a table on Spark, as the other incremental facts). A run recomputes the
-- lines of the purchases int_purchases_unioned rewrote since (`built_at`: new purchases, a
-- receipt's late line, a person merged), of the lines loaded since (`loaded_through`, each line's
-- load time: an order's late line) and of the purchases that are no longer one (an order re-sent
-- as cancelled, a record gone), whose lines go. A marker row per recomputed purchase (built_at
-- null) deletes its old lines (strategy replace_marked, macros/incremental_facts.sql). A changed
-- catalogue (`catalogue_hash`: a product's category) or an older table layout recomputes
-- everything.
{{ config(
    materialized=fact_materialization(),
    incremental_strategy='replace_marked',
    marked_partitioned_by='purchase_id',
    marked_by='built_at',
    inserted_when='true',
    on_schema_change='sync_all_columns',
) }}
{%- set state = is_incremental() and identity_state_readable(['loaded_through', 'built_at', 'catalogue_hash']) %}
{%- if state %}
{#- The previous build's watermark and time, as values where the filters use them. #}
{%- set since = previous_build_values() %}
{%- endif %}
{%- set purchases = ref('int_purchases_unioned') %}
{%- set built_at = build_time() %}

with items as (
    select * from {{ ref('stg_ecommerce__order_items') }}
),

pos as (
    select * from {{ ref('stg_pos__transaction_lines') }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

catalogue as (
    select {{ identity_hash('count(*), sum(hash(product_id, category))') }} as catalogue_hash from products
),

lines as (
    select 'order:' || order_id as purchase_id, product_id, quantity, line_amount, _loaded_at as loaded_through
    from items
    union all
    select 'pos:' || transaction_id, product_id, quantity, line_amount, _loaded_at from pos
),

{% if state %}
previous as (
    {{ previous_build(catalogue='(select catalogue_hash from catalogue)') }}
),

scope as (
    select purchase_id from {{ purchases }}
    where built_at > {{ since.built_at }} or (select everything from previous)
    union
    select purchase_id from lines where loaded_through > {{ since.loaded_through }}
    union
    -- Not exists rather than not in: DuckDB can run it as an anti join, where not in needs a mark
    -- join for the nulls it cannot have (2.9-3.2 -> 2.6 s for this statement at 1M customers).
    select l.purchase_id from {{ this }} l
    where not exists (select 1 from {{ purchases }} p where p.purchase_id = l.purchase_id)
),
{% endif %}

final as (
    select
        p.customer_id,
        l.purchase_id,
        p.purchased_at,
        p.channel,
        l.product_id,
        pr.category,
        l.quantity,
        l.line_amount,
        l.loaded_through,
        {{ built_at }} as built_at,
        (select catalogue_hash from catalogue) as catalogue_hash
    from lines l
    join {{ purchases }} p using (purchase_id)
    left join products pr using (product_id)
    {% if state %}where l.purchase_id in (select purchase_id from scope){% endif %}
    {% if is_incremental() %}
    union all
    -- Markers (see the top): they delete every old line of the purchases recomputed; not inserted.
    select null, purchase_id, null, null, null, null, null, null, null, null, null
    from {% if state %}scope{% else %}(select distinct purchase_id from {{ this }}){% endif %}
    {% endif %}
)

select * from final
