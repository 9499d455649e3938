-- Connected components of the identity graph by label propagation with pointer jumping:
-- each round a node takes the smallest label among its neighbours, then the label of its
-- label. Converges in O(log diameter) rounds; the test assert_identity_components_converged
-- fails the build if the rounds below ever stop being enough.
-- The rounds run on dense integer ids numbered in node order, not on the ~70-character key
-- strings: each round's joins and aggregates get several times cheaper, and the smallest id is
-- still the smallest node, so components (and the customer ids derived from them) are unchanged.
{% set rounds = 8 if pointer_jumping() else 16 %}
with edges as (
    select node_a, node_b from {{ ref('int_identity_edges_linked') }}
),

nodes as (
    select node, row_number() over (order by node) as id
    from (select node_a as node from edges union select node_b from edges) all_nodes
),

id_edges as (
    select a.id as id_a, b.id as id_b
    from edges e
    join nodes a on a.node = e.node_a
    join nodes b on b.node = e.node_b
),

undirected as (
    select id_a as node, id_b as neighbour from id_edges
    union
    select id_b, id_a from id_edges
),

labels_0 as (
    select node, min(least(node, neighbour)) as label from undirected group by node
),

{% for i in range(1, rounds + 1) %}
spread_{{ i }} as (
    select u.node, min(l.label) as label
    from undirected u
    join labels_{{ i - 1 }} l on l.node = u.neighbour
    group by u.node
),

labels_{{ i }} as (
{%- if pointer_jumping() %}
    select s.node, least(s.label, coalesce(j.label, s.label)) as label
    from spread_{{ i }} s
    left join spread_{{ i }} j on j.node = s.label
{%- else %}
    select node, label from spread_{{ i }}
{%- endif %}
),
{% endfor %}

final as (
    select n.node as record_node, c.node as component
    from labels_{{ rounds }} l
    join nodes n on n.id = l.node
    join nodes c on c.id = l.label
    where n.node in (select record_node from {{ ref('int_identity_records_unioned') }})
)

select * from final
