-- Stable customer ids. A component that contains records seen before keeps the oldest id among
-- them (so people keep their ids when new data arrives, and a merge keeps the elder id); a
-- component of new records only gets a new id derived from its smallest record. When a component
-- splits (a record that linked two people was erased or corrected), the parts would all claim
-- its id: the part holding most of the records that had it keeps it, the others get new ids
-- (derived from their smallest record and the id they leave), so one id never names two people.
-- full_refresh is off: rebuilding from scratch would re-mint ids downstream systems know.
--
-- On DuckDB a run assigns ids to the components int_identity_components_resolved wrote rows of
-- since this model's last run (`resolved_at` after the latest one stored here), reading all of
-- each such component's records (the ids they held), and writes the rows written there: every
-- record of a merged, split or renamed component, only the new records of one that only grew
-- (its id cannot change: it holds one earlier component whole). Every other component and its
-- id is as it was. Rows of records gone stay, as
-- they always did (a record that comes back gets its id back). Spark overwrites the table, so it
-- assigns every component each run.
{{ config(
    materialized='incremental',
    unique_key='record_node',
    incremental_strategy=replace_rows_strategy(),
    full_refresh=false,
    on_schema_change='append_new_columns',
) }}
{%- set scoped = is_incremental() and target.type == 'duckdb' and identity_state_readable(['resolved_at']) %}

{%- if scoped %}
{%- set since = "(select coalesce(max(resolved_at), cast('1900-01-01' as timestamp)) from " ~ this ~ ")" %}
{%- endif %}
with components as (
    select * from {{ ref('int_identity_components_resolved') }}
    {% if scoped %}
    -- By label, not by name: every row of a component carries the same label (its smallest record
    -- number) as it carries the same name, and the integers are cheaper to match than the
    -- ~70-character names (19M rows at 1M customers).
    where label in (
        select label from {{ ref('int_identity_components_resolved') }} where resolved_at > {{ since }}
    )
    {% endif %}
),

{% if is_incremental() %}
previous as (
    select record_node, customer_id, assigned_at from {{ this }}
),
{% else %}
previous as (
    select cast(null as {{ string_type() }}) as record_node, cast(null as {{ string_type() }}) as customer_id, null::timestamp as assigned_at
    where false
),
{% endif %}

record_ids as (
    select c.record_node, c.component, c.resolved_at, p.customer_id as previous_customer_id, p.assigned_at
    from components c
    left join previous p using (record_node)
),

-- The ids a component's records held before, with how many records held each.
held as (
    select component, previous_customer_id as customer_id, min(assigned_at) as assigned_at, count(*) as records
    from record_ids
    where previous_customer_id is not null
    group by component, previous_customer_id
),

component_ids as (
    select
        component,
        {{ arg_min_of('customer_id', ['assigned_at', 'customer_id']) }} as existing_id,
        min(assigned_at) as existing_assigned_at,
        {{ arg_min_of('records', ['assigned_at', 'customer_id']) }} as records_holding_it
    from held
    group by component
),

-- A split component's parts all claim its id: the part holding most of the records that had it
-- (then the smallest component key) keeps it.
claims as (
    select
        component,
        existing_id,
        existing_assigned_at,
        row_number() over (
            partition by existing_id order by records_holding_it desc, component
        ) = 1 as keeps_id
    from component_ids
),

final as (
    select
        c.record_node,
        case
            when k.keeps_id then k.existing_id
            when k.existing_id is not null
                then 'C' || substr({{ sha256_hex("c.component || '/' || k.existing_id") }}, 1, 16)
            else 'C' || substr({{ sha256_hex('c.component') }}, 1, 16)
        end as customer_id,
        case when k.keeps_id then k.existing_assigned_at else current_timestamp::timestamp end as assigned_at,
        c.resolved_at,
        -- The id the record had before this assignment (null: a new record): where it differs,
        -- customer_id_changes records a merge or a split.
        c.previous_customer_id
    from record_ids c
    left join claims k using (component)
    {% if scoped %}where c.resolved_at > {{ since }}{% endif %}
)

select * from final
