-- One row per identified customer and catalogue product they touched: purchases (web/app
-- orders and store receipts), add-to-carts and product views, weighted purchase > cart > view.
-- Anonymous customers (devices that never logged in, walk-in receipts) are left out: there is
-- no one to recommend to. Web 'purchase' events are skipped because orders already count them.
-- Nothing here depends on the as-of date, so a row only changes when its customer's touches do.
--
-- Browsing comes rolled up per device and product (int_device_products_touched), about half as
-- many rows as the view and cart events, so recomputing a customer never reads the clickstream.
--
-- Incremental on DuckDB (a table on Spark, as the other incremental facts). A run recomputes only
-- the rows of the (customer, product) pairs with a touch loaded since the last run
-- (`loaded_through`, the latest load a row was built from): the products of the views and carts
-- loaded since, and every product of the purchases loaded since (an order re-sent as cancelled
-- too). A row depends only on its own customer's touches of its own product, so the customer's
-- other rows are what a recompute would give (at 1M customers, 7 days of new data touch 184,347
-- customers holding 10.2M rows). A marker row per pair (weight null) makes its row go when
-- nothing is left (strategy replace_marked, macros/incremental_facts.sql). Customers whose
-- identity was recomputed since (their records' `resolved_at` after this model's `built_at`)
-- and whose records changed (`members_hash`: merges, splits), or who have no rows yet (new
-- people), are recomputed whole: their marker row (product_id null) deletes all their rows.
-- Only the records a touch can come from count (devices, orders, receipts): a new consent event
-- or ticket changes no touch. Nor do the purchases loaded since, whose pairs are recomputed
-- anyway: each new order or receipt joins its buyer's component, and counting it made every
-- buyer of the week a customer recomputed whole (at 1M customers, 173k customers and 9.1M of the
-- 33M rows in a 7-day run). A customer's stored hash is that of their latest written rows (a
-- row carries its customer's hash as of the run that wrote it).
-- Customers who are no longer identified persons (the other side of a merge, a person left with
-- no key) lose their rows by a marker too (`vanished`). Only an id whose records were resolved
-- again since the last run can stop naming a person: an id a run changed (customer_id_changes,
-- which keeps every run's changes, so a run of this model that was skipped misses none) or the id
-- of a record resolved since; on a day every record was resolved again, any id of the table. An
-- erased person's rows are deleted by the erasure itself. A post-hook that compared every row
-- with the identified customers did this on every run before: 6.5 s of the daily run at 1M
-- customers (33M rows), for the few ids a day changes.
-- Records removed or renumbered make the components model recompute everyone; here only the
-- people whose records changed follow (the hash is of record nodes, not numbers), as the others'
-- touches did not change. A changed catalogue (`catalogue_hash`) or an older table layout
-- recomputes everyone.
{% set purchase_weight = var('rec_weight_purchase', 5.0) %}
{% set cart_weight = var('rec_weight_cart', 2.0) %}
{% set view_weight = var('rec_weight_view', 1.0) %}

{{ config(
    materialized=fact_materialization(),
    incremental_strategy='replace_marked',
    marked_partitioned_by='customer_id',
    marked_by='product_id',
    inserted_when='weight is not null',
    on_schema_change='sync_all_columns',
) }}
{%- set state = is_incremental() and identity_state_readable(['loaded_through', 'built_at', 'catalogue_hash', 'members_hash']) %}
{%- if state %}
{#- The previous build's watermark and time, as values where the filters use them. #}
{%- set since = previous_build_values() %}
{%- endif %}

-- The browsing rollup, the identity records, the purchase lines and when each purchase was
-- loaded (a receipt: its latest line) are read by name where used, not through CTEs:
-- DuckDB materialises a CTE read twice, which copied 29M device-product rows and 19M records at
-- 1M customers before anything was scoped (with the distinct count gone, see purchases, the
-- daily run's query took 29 s alone at L instead of 67).
{% set device_products = ref('int_device_products_touched') %}
{% set identity = ref('int_identity_records_matched') %}
{% set purchase_lines = ref('int_purchase_lines_unioned') %}
{% set recorded = ref('int_purchases_recorded') %}
{% set order_items = ref('stg_ecommerce__order_items') %}
{% set receipt_lines = ref('stg_pos__transaction_lines') %}
{% set id_changes = ref('customer_id_changes') %}
-- Every current record with its customer and when its component was resolved, named as the
-- graph names it (the members hash is of these nodes). The identity records carry all three, so
-- no join of the components with the ids on those ~70-character strings (a quarter of this
-- model's work at 100k customers).
{% set assigned %}(select source, source_record_id, source || ':' || source_record_id as record_node, customer_id, resolved_at from {{ identity }}){% endset %}
-- The sources whose records a touch can come from: who a customer is, for this model.
{% set touch_sources = "('web_events', 'ecommerce_orders', 'pos_transactions')" %}

with products as (
    select * from {{ ref('stg_catalog__products') }}
),

catalogue as (
    select {{ identity_hash('count(*), min(product_id), max(product_id), sum(hash(product_id))') }} as catalogue_hash from products
),

identified_customers as (
    select distinct customer_id from {{ identity }} where not is_anonymous
),

{% if state %}
-- `everything`: rows built under another catalogue, so everyone is recomputed.
previous as (
    {{ previous_build(catalogue='(select catalogue_hash from catalogue)') }}
),

-- Purchases loaded since the last run: changed_pairs recomputes their products' rows.
new_purchases as (
    select source, source_record_id from {{ recorded }}
    where loaded_through > {{ since.loaded_through }}
),

-- Customers with a record whose component was recomputed since the last run, other than a
-- purchase loaded since. A customer whose only such records are those purchases kept every other
-- record as it was (a merge, a split or a new name rewrites every record of the component), so
-- their touch records less those purchases are what their rows were built from: comparing the
-- hashes would find them equal. At 1M customers a week's run leaves 89k of 196k customers to
-- compare, and this statement took 7.1 s instead of 8.0-9.5 (the same rows).
reresolved as (
    select distinct i.customer_id from {{ identity }} i
    where i.resolved_at > {{ since.built_at }}
        and not exists (
            select 1 from new_purchases n
            where n.source = i.source and n.source_record_id = i.source_record_id
        )
),

-- Customers recomputed whole: a new or changed identity, or everyone for a new catalogue.
recomputed_customers as (
    -- People whose component was recomputed since the last run and whose touch records, leaving
    -- out the purchases loaded since, are not those their latest rows were built from (merges,
    -- splits), or who are new here, or who kept no touch record (a split).
    select coalesce(r.customer_id, s.customer_id) as customer_id
    from (
        select i.customer_id, {{ identity_hash('count(*), sum(hash(i.record_node))') }} as members_hash
        from {{ assigned }} i
        where i.customer_id in (select customer_id from reresolved)
            and i.source in {{ touch_sources }}
            and not exists (
                select 1 from new_purchases n
                where n.source = i.source and n.source_record_id = i.source_record_id
            )
        group by i.customer_id
    ) r
    full join (
        select customer_id, arg_max(members_hash, built_at) as members_hash from {{ this }}
        where customer_id in (select customer_id from reresolved)
        group by customer_id
    ) s using (customer_id)
    where r.members_hash is distinct from s.members_hash
    union
    select customer_id from identified_customers where (select everything from previous)
),

scope as (
    select customer_id from identified_customers
    where customer_id in (select customer_id from recomputed_customers)
),

-- The other identified customers' products with a touch loaded since the last run: just these
-- rows of theirs are recomputed (anonymity is per customer, so `not is_anonymous` is
-- "identified"). Browsing: the (device, product) pairs the new events touched. Purchases: every
-- product of every purchase loaded since, from all its lines, cancelled orders' too (a cancelled
-- order leaves its products' rows; a receipt with a new line moves its other lines' products'
-- `loaded_through`); a line's product never changes (the loader quarantines a re-sent line key).
changed_pairs as (
    select i.customer_id, t.product_id
    from {{ device_products }} t
    join {{ identity }} i on i.source = 'web_events' and i.source_record_id = t.device_id
    where t.loaded_through > {{ since.loaded_through }}
        and not i.is_anonymous
    union
    select i.customer_id, l.product_id
    from {{ recorded }} r
    join {{ identity }} i on i.source = r.source and i.source_record_id = r.source_record_id
    join (
        select 'order:' || order_id as purchase_id, product_id from {{ order_items }}
        union all
        select 'pos:' || transaction_id, product_id from {{ receipt_lines }}
    ) l on l.purchase_id = r.purchase_id
    where r.loaded_through > {{ since.loaded_through }}
        and not i.is_anonymous
        and l.product_id is not null
),

pairs as (
    select customer_id, product_id from changed_pairs
    where customer_id not in (select customer_id from scope where customer_id is not null)
),

-- Ids a run changed since (merged away, split) or whose records were resolved since, that no
-- longer name an identified person: their marker (below) deletes their rows. When every record
-- was resolved again (records gone from a source make the identity start afresh, and a person
-- whose records all went is in no change: identity_resolved_afresh_since), every customer of the
-- table is a candidate, as in customers_changed_since().
{%- set everyone = identity_resolved_afresh_since(since.built_at, identity) %}
vanished as (
    select customer_id from (
        select previous_customer_id as customer_id from {{ id_changes }}
        where changed_at > {{ since.built_at }}
        union
        select customer_id from {{ identity }} where resolved_at > {{ since.built_at }}
        {%- if everyone %}
        union
        select customer_id from {{ this }}
        {%- endif %}
    ) candidates
    where customer_id is not null
        and customer_id not in (select customer_id from identified_customers where customer_id is not null)
),

{% else %}
scope as (
    select customer_id from identified_customers
),

{% if is_incremental() %}
-- A table without this model's state (an older layout): every customer it holds who is no longer
-- an identified person.
vanished as (
    select distinct customer_id from {{ this }}
    where customer_id is not null
        and customer_id not in (select customer_id from identified_customers where customer_id is not null)
),
{% endif %}
{% endif %}

-- Who each customer is, as a hash of their touch records: a later run compares it.
members as (
    select customer_id, {{ identity_hash('count(*), sum(hash(record_node))') }} as members_hash
    from {{ assigned }} assigned
    where source in {{ touch_sources }} and customer_id in (
        select customer_id from scope
        {% if state %}union all select customer_id from pairs{% endif %}
    )
    group by customer_id
),

scoped_identity as (
    select i.* from {{ identity }} i join scope using (customer_id)
),

-- One row per purchase of a product (purchase_key set: a basket line split over two rows is
-- still one purchase, grouped here rather than by a distinct count below, which cost DuckDB an
-- extra pass over every touch) or per device and product browsed (the counts).
purchases as (
    select
        l.customer_id, l.product_id, l.purchase_id as purchase_key, 0 as carts, 0 as views,
        min(l.purchased_at) as first_at, max(l.purchased_at) as last_at, max(r.loaded_through) as loaded_through
    from {{ purchase_lines }} l
    join scope using (customer_id)
    left join {{ recorded }} r using (purchase_id)
    group by l.customer_id, l.product_id, l.purchase_id
    {% if state %}
    union all
    select
        l.customer_id, l.product_id, l.purchase_id, 0, 0,
        min(l.purchased_at), max(l.purchased_at), max(r.loaded_through)
    from {{ purchase_lines }} l
    join pairs using (customer_id, product_id)
    left join {{ recorded }} r using (purchase_id)
    group by l.customer_id, l.product_id, l.purchase_id
    {% endif %}
),

-- Product views and add-to-carts, already rolled up per device and product.
browsing as (
    select
        i.customer_id, t.product_id, null as purchase_key, t.carts, t.views,
        t.first_touched_at as first_at, t.last_touched_at as last_at, t.loaded_through
    from {{ device_products }} t
    join scoped_identity i on i.source = 'web_events' and i.source_record_id = t.device_id
    {% if state %}
    union all
    select i.customer_id, t.product_id, null, t.carts, t.views, t.first_touched_at, t.last_touched_at, t.loaded_through
    from {{ device_products }} t
    join {{ identity }} i on i.source = 'web_events' and i.source_record_id = t.device_id
    join pairs p on p.customer_id = i.customer_id and p.product_id = t.product_id
    {% endif %}
),

touches as (
    select t.*
    from (select * from purchases union all select * from browsing) t
    join products using (product_id)
),

counted as (
    select
        customer_id,
        product_id,
        count(purchase_key) as purchase_count,
        cast(sum(carts) as bigint) as cart_count,
        cast(sum(views) as bigint) as view_count,
        min(first_at) as first_event_at,
        max(last_at) as last_event_at,
        max(last_at) filter (where purchase_key is not null) as last_purchased_at,
        max(loaded_through) as loaded_through
    from touches
    group by customer_id, product_id
),

final as (
    select
        customer_id,
        product_id,
        cast(
            {{ purchase_weight }} * purchase_count
            + {{ cart_weight }} * cart_count
            + {{ view_weight }} * view_count
            as double
        ) as weight,
        purchase_count,
        cart_count,
        view_count,
        first_event_at,
        last_event_at,
        last_purchased_at,
        loaded_through,
        {{ build_time() }} as built_at,
        (select catalogue_hash from catalogue) as catalogue_hash,
        m.members_hash
    from counted
    left join members m using (customer_id)
    {% if is_incremental() %}
    union all
    -- Markers (see the top): the delete then reaches all the rows of the customers recomputed
    -- whole, those left with no touch too. They are not inserted.
    select
        customer_id, null, null, null, null, null, null, null, null, null,
        {{ build_time() }}, null, null
    from scope
    union all
    select
        customer_id, null, null, null, null, null, null, null, null, null,
        {{ build_time() }}, null, null
    from vanished
    {% if state %}
    union all
    -- A marker per recomputed pair too: its row goes when it has no touch left (a cancelled order).
    select
        customer_id, product_id, null, null, null, null, null, null, null, null,
        {{ build_time() }}, null, null
    from pairs
    {% endif %}
    {% endif %}
)

select * from final
