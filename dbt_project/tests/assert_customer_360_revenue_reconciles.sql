-- customer_360 attributes every identified purchase to exactly one person.
select abs(
    (select coalesce(sum(revenue), 0) from {{ ref('customer_360') }})
    - (select coalesce(sum(amount), 0) from {{ ref('int_purchases_unioned') }})
) as difference
having difference > 1
