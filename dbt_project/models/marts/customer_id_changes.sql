-- Every change of customer_id a run made: a merge (the records of one person joined another, whose
-- id stays) or a split (part of a person left it under a new id, after the record that linked
-- them was erased or corrected). One row per run, old id and new id, with the records that moved:
-- what a downstream system keying its data by customer_id (a CRM, an ad audience) follows to
-- re-key what it holds.
--
-- Incremental, and never rebuilt (full_refresh is off, as for the ids: a rebuild would keep only
-- the changes still visible in int_customer_ids_assigned). A build reads the ids assigned since the latest change stored (every record of a
-- recomputed component carries that run's resolved_at) and appends their changes; ids never
-- change otherwise, so nothing else is read. A merge keeps an id some of the component's records
-- already held; a split moves records to an id none of them held. On Spark (Parquet, no merge)
-- the model is a plain table holding the changes of the ids assigned in the last run
-- (fact_materialization()).
{{ config(
    materialized=fact_materialization(),
    unique_key=['changed_at', 'previous_customer_id', 'customer_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    full_refresh=false,
) }}

with assigned as (
    select * from {{ ref('int_customer_ids_assigned') }}
    {% if is_incremental() %}
    where resolved_at > (select coalesce(max(changed_at), cast('1900-01-01' as timestamp)) from {{ this }})
    {% endif %}
),

-- Ids that some record held before and still holds: the ids a merge kept.
kept as (
    select distinct resolved_at, customer_id
    from assigned
    where previous_customer_id = customer_id
),

final as (
    select
        a.resolved_at as changed_at,
        a.previous_customer_id,
        a.customer_id,
        case when k.customer_id is not null then 'merge' else 'split' end as change,
        count(*) as records
    from assigned a
    left join kept k using (resolved_at, customer_id)
    where a.previous_customer_id is not null and a.previous_customer_id <> a.customer_id
    group by a.resolved_at, a.previous_customer_id, a.customer_id, k.customer_id
)

select * from final
