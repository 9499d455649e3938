-- Item -> next item counts over every customer's time-ordered touches, counted in SQL rather
-- than by sorting every touch in pandas (ml.recommendations.models.TransitionModel.from_counts).
-- A repeat of the same product is not a move; ties in time are ordered by product, as
-- TransitionModel.fit does. A view: computed when the recommender trains, not every build.
{{ config(materialized='view') }}

with touches as (
    select * from {{ ref('recommender_touches') }}
),

ordered as (
    select
        product_id,
        lag(product_id) over (partition by customer_id order by event_time, product_id) as previous
    from touches
),

final as (
    select previous as from_product, product_id as to_product, count(*) as transitions
    from ordered
    where previous is not null and previous <> product_id
    group by previous, product_id
)

select * from final
