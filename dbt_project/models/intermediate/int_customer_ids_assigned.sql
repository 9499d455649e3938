-- Stable customer ids. A component that contains records seen before keeps the oldest id among
-- them (so people keep their ids when new data arrives, and a merge keeps the elder id); a
-- component of new records only gets a new id derived from its smallest record.
-- full_refresh is off: rebuilding from scratch would re-mint ids downstream systems know.
--
-- On DuckDB a run assigns ids to the components int_identity_components_resolved rewrote since
-- this model's last run (`resolved_at` after the latest one stored here): it rewrites whole
-- components, so every other component and its id is as it was. Rows of records gone stay, as
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

with components as (
    select * from {{ ref('int_identity_components_resolved') }}
    {% if scoped %}
    where resolved_at > (select coalesce(max(resolved_at), cast('1900-01-01' as timestamp)) from {{ this }})
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

component_ids as (
    select
        c.component,
        {{ arg_min_of('p.customer_id', ['p.assigned_at', 'p.customer_id']) }} as existing_id,
        min(p.assigned_at) as existing_assigned_at
    from components c
    left join previous p using (record_node)
    group by c.component
),

final as (
    select
        c.record_node,
        coalesce(i.existing_id, 'C' || substr({{ sha256_hex('c.component') }}, 1, 16)) as customer_id,
        coalesce(i.existing_assigned_at, current_timestamp::timestamp) as assigned_at,
        c.resolved_at
    from components c
    join component_ids i using (component)
)

select * from final
