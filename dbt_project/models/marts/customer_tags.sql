-- Customer tags, one row per customer and tag: the tags each customer holds now (the rule book
-- is int_customer_tags_assigned.sql), with valid_from the as-of date from which the customer
-- has held the tag without a break (customer_tag_history keeps the earlier periods).
select
    customer_id,
    tag_group,
    tag,
    value,
    valid_from
from {{ ref('customer_tag_history') }}
where valid_to is null
