-- The connected component (person) of every record. Components are found on the numbered
-- records and integer edges: on DuckDB by union-find in int_identity_component_labels (a Python
-- model), elsewhere by label propagation in SQL (connected_component_labels). A component is
-- labelled by its smallest record number and named, as before the numbering, by its smallest
-- node of the record-and-key graph: the smallest record node or key string among its records, so
-- the customer ids int_customer_ids_assigned derives from it do not change.
--
-- Incremental on DuckDB (record numbers are stable across builds): each row keeps its record's
-- label (the component's smallest record number) and a fingerprint of what links it (keys and
-- fuzzy fields). A record is new or changed when int_identity_records_unioned wrote it since this
-- model last ran and it differs from its state row. A run recomputes only the components a new or
-- changed record touches: the
-- components it was in and those of the records it now has an edge to (an edge between two
-- unchanged records existed before, so they already shared a component: every other component
-- is as it was). The labels of the whole graph are recomputed each run (seconds at 1M customers);
-- the rows, their names and merge history are only rewritten for those components, and of a
-- component that only grew (new records joined one earlier component, unchanged) only the new
-- records' rows are written. Rows written carry the run's `resolved_at`: what the models
-- downstream re-read (records_matched, ids_assigned, then purchases and interactions). When a
-- record of the state is gone (an erasure) or was renumbered (records rebuilt from scratch), the
-- state no longer describes the graph: the run rewrites every component, the simplest correct
-- choice (the post-hook then drops the rows of vanished records).
{{ config(
    materialized=fact_materialization(),
    unique_key='record_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook="{{ delete_vanished_records(ref('int_identity_records_unioned')) }}"
) }}
{%- set state = is_incremental() and identity_state_readable(['record_id', 'node_hash', 'fingerprint', 'label', 'resolved_at']) %}

-- node_hash and fingerprint: what a record is and what links it, as hashes. A state row whose
-- node hash differs numbers another node now; a record whose fingerprint differs is new or changed.
with records as (
    select
        record_id,
        record_node,
        least(record_node, coalesce({{ list_min('link_keys') }}, record_node)) as smallest_node,
        {{ identity_hash('record_node') }} as node_hash,
        {{ identity_hash('link_keys, name_key, birth_date, postcode') }} as fingerprint
    from {{ ref('int_identity_records_unioned') }}
),

-- Self edges (a key's first record) carry no link.
edges as (
    select record_id, linked_record_id
    from {{ ref('int_identity_edges_linked') }}
    where record_id <> linked_record_id
),

{% if state %}
state as (
    select record_id, node_hash, fingerprint, label from {{ this }}
),

-- The records written since this model last ran: int_identity_records_unioned stamps every row it
-- writes with its build's time (`built_at`), and a record is new or changed only if written since
-- (a new one always is). Comparing every record with the state instead, in one full join, cost
-- 2.5-3 s of each daily run at 1M customers (19M records, their keys hashed) for the 0.5M a week
-- writes. A build's time is its dbt invocation's start, shared by both models of one run: records
-- written in the run this model last ran in were compared then. Rows from before `built_at`
-- existed (null) were in the state already.
written as (
    select
        record_id,
        {{ identity_hash('record_node') }} as node_hash,
        {{ identity_hash('link_keys, name_key, birth_date, postcode') }} as fingerprint
    from {{ ref('int_identity_records_unioned') }}
    -- An empty state (no last run) makes every record new.
    where built_at > (select max(resolved_at) from {{ this }})
        or (select max(resolved_at) from {{ this }}) is null
),

-- The written records that differ from their state row: a record is new or changed where its
-- state row is missing or differs; a state row now numbering another node means a renumbering.
differences as (
    select w.record_id, w.node_hash, s.record_id as state_record_id, s.node_hash as state_node_hash
    from written w
    left join state s on s.record_id = w.record_id
    where s.record_id is null or s.node_hash <> w.node_hash or s.fingerprint <> w.fingerprint
),

-- Everything is recomputed after a renumbering or when a record of the state is gone (an
-- erasure). Gone, counted: the state holds every record of the last run, and every record it does
-- not hold is new, so written; the state's records still present are the records less the new
-- ones, and fewer than the state's rows when some are gone.
rebuild as (
    select
        count(*) filter (where state_record_id is not null and state_node_hash <> node_hash) > 0
        or (select count(*) from state) + count(*) filter (where state_record_id is null)
            > (select count(*) from {{ ref('int_identity_records_unioned') }})
        as everything
    from differences
),

changed as (
    select record_id from differences
),

touched_labels as (
    select s.label from changed c join state s on s.record_id = c.record_id
    union
    select s.label from edges e join changed c on c.record_id = e.record_id join state s on s.record_id = e.linked_record_id
    union
    select s.label from edges e join changed c on c.record_id = e.linked_record_id join state s on s.record_id = e.record_id
),

affected as (
    select record_id from state where label in (select label from touched_labels)
    union
    select record_id from changed
    union
    -- Numbers read from the records, not record_hashes: a second read of that CTE would make
    -- DuckDB copy every record's hashes first.
    select record_id from {{ ref('int_identity_records_unioned') }} where (select everything from rebuild)
),

scope as (
    select r.*
    from records r
    join affected a on a.record_id = r.record_id
),
{% else %}
scope as (
    select * from records
),
{% endif %}

{% if target.type == 'duckdb' %}
labels as (
    select node, label from {{ ref('int_identity_component_labels') }}
),
{% else %}
adjacency as (
    select record_id as node, linked_record_id as neighbour from edges
    union all
    select linked_record_id, record_id from edges
),

labels as (
    {{ connected_component_labels('adjacency') }}
),
{% endif %}

-- A record without edges is a component of its own. previous_label: the record's label before
-- this run (null if new or renumbered), joined here once for grown and final (each joined the
-- state on its own before: 1.6-1.8 s each at 1M customers, for 5.2M recomputed records).
labelled as (
    select
        r.record_id, r.record_node, r.node_hash, r.fingerprint, r.smallest_node,
        coalesce(l.label, r.record_id) as label,
        {% if state %}s.label{% else %}cast(null as bigint){% endif %} as previous_label
    from scope r
    left join labels l on l.node = r.record_id
    {% if state %}
    left join state s on s.record_id = r.record_id and s.node_hash = r.node_hash
    {% endif %}
),

component_names as (
    select label, min(smallest_node) as component
    from labelled
    group by label
),

{% if state %}
-- The earlier components a changed record was in: such a component may have split.
broken_labels as (
    select s.label from changed c join state s on s.record_id = c.record_id
),

-- A recomputed component that only grew: it holds every record of one earlier component, none of
-- them changed (so all still linked, as before), under the same label and name, and new records.
-- Only its new records are written: every other row would be written as it is. A merge, a split,
-- a changed record or a new name rewrites the whole component. Most components a daily run
-- touches only grew (a buyer's new order, ticket or visit): at 1M customers a week's records
-- touch 5.2M of 19M records' components, and rewriting them all made every model reading
-- `resolved_at` downstream redo their work.
grown as (
    select l.label
    from labelled l
    join component_names n on n.label = l.label
    where not (select everything from rebuild)
    group by l.label, n.component
    having count(distinct l.previous_label) = 1
        and min(l.previous_label) = l.label
        and min(l.smallest_node) filter (where l.previous_label is not null) = n.component
        and min(l.previous_label) not in (select label from broken_labels)
),
{% endif %}

-- A recomputed component whose records had several previous labels is a merge of those
-- components (people) into one.
final as (
    select
        l.record_id,
        l.record_node,
        l.node_hash,
        l.fingerprint,
        l.label,
        n.component,
        l.previous_label,
        {{ build_time() }} as resolved_at
    from labelled l
    join component_names n on n.label = l.label
    {% if state %}
    where l.previous_label is null or l.label not in (select label from grown)
    {% endif %}
)

select * from final
