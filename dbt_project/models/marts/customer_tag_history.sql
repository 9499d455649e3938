-- How each customer's tags moved: one row per customer, tag and value for every period in which
-- the customer held it, from valid_from (the as-of date of the build that first assigned it) to
-- valid_to (the as-of date of the build that no longer did; null while the tag still holds).
--
-- Incremental: a build compares the tags assigned now (int_customer_tags_assigned) with the
-- open rows. Open rows that are no longer assigned are closed (same key, valid_to set: the
-- delete+insert replaces them); assigned tags without an open row are opened. Tags that still
-- hold are not touched, so their valid_from stays the day they were first assigned. An id that
-- left customer_360 (merged into another person) holds no tags any more, so its periods close;
-- an erased person's rows are deleted by c360 erase like every other derived row. A full
-- refresh starts the history again at the current as-of date. On Spark (Parquet, no merge) the
-- model is a plain table holding only the current period (fact_materialization()).
{{ config(
    materialized=fact_materialization(),
    unique_key=['customer_id', 'tag_group', 'tag', 'value', 'valid_from'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

with assigned as (
    select * from {{ ref('int_customer_tags_assigned') }}
),

{% if is_incremental() %}
open_rows as (
    select * from {{ this }}
    where valid_to is null
),

as_of as (
    -- The build's as-of date, as the tags were computed at it.
    select max(as_of_date) as as_of_date from assigned
),

closed as (
    -- greatest(): a build at an earlier as-of date (a backfill) must not end a period before it began.
    select o.customer_id, o.tag_group, o.tag, o.value, o.valid_from, greatest(a.as_of_date, o.valid_from) as valid_to
    from open_rows o
    cross join as_of a
    where not exists (
        select 1 from assigned t
        where t.customer_id = o.customer_id and t.tag_group = o.tag_group
            and t.tag = o.tag and t.value = o.value
    )
),

opened as (
    select t.customer_id, t.tag_group, t.tag, t.value, t.as_of_date as valid_from, cast(null as date) as valid_to
    from assigned t
    where not exists (
        select 1 from open_rows o
        where o.customer_id = t.customer_id and o.tag_group = t.tag_group
            and o.tag = t.tag and o.value = t.value
    )
),

changes as (
    select * from closed
    union all
    select * from opened
)
{% else %}
changes as (
    select customer_id, tag_group, tag, value, as_of_date as valid_from, cast(null as date) as valid_to
    from assigned
)
{% endif %}

select * from changes
