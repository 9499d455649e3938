-- Connected components of the identity graph by label propagation with pointer jumping:
-- each round a node takes the smallest label among its neighbours, then the label of its
-- label. Converges in O(log diameter) rounds; the test assert_identity_components_converged
-- fails the build if the rounds below ever stop being enough.
{% set rounds = 8 %}
with edges as (
    select node_a, node_b from {{ ref('int_identity_edges_linked') }}
),

undirected as (
    select node_a as node, node_b as neighbour from edges
    union
    select node_b, node_a from edges
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
    select s.node, least(s.label, coalesce(j.label, s.label)) as label
    from spread_{{ i }} s
    left join spread_{{ i }} j on j.node = s.label
),
{% endfor %}

final as (
    select node as record_node, label as component
    from labels_{{ rounds }}
    where node in (select record_node from {{ ref('int_identity_records_unioned') }})
)

select * from final
