"""raw.product_reviews: reviews, tied to the catalogue."""

from expectations.suite import at_least, equals_zero, orphans, raw_suite

suite = raw_suite(
    "product_reviews",
    extra_rows=lambda now: [at_least("score", 1, 5)],
    facts={
        "reviews_of_unknown_product": orphans(
            "raw.product_reviews", "product_id", "raw.products", "product_id"
        )
    },
    fact_expectations=equals_zero("reviews_of_unknown_product"),
    max_lag_days=60,
)
