-- The customers whose touches the recommender's temporal evaluation reads, in a fixed
-- pseudo-random order (md5, the same on DuckDB and Spark): the evaluation takes those with
-- sample_rank up to its limit. At 1M customers every touch is ~80M rows, which as a DataFrame
-- took more than 14 GB; NDCG@10 and the tuned L2 need far fewer customers.
{{ config(materialized='view') }}

with interactions as (
    select distinct customer_id from {{ ref('int_interactions_weighted') }}
),

final as (
    select customer_id, row_number() over (order by md5(customer_id), customer_id) as sample_rank
    from interactions
)

select * from final
