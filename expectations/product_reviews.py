"""raw.product_reviews: reviews, tied to the catalogue."""

from expectations.suite import at_least, raw_suite

suite = raw_suite(
    "product_reviews",
    extra_rows=lambda now: [at_least("score", 1, 5)],
    references={"reviews_of_unknown_product": ("product_id", "raw.products", "product_id")},
    max_lag_days=60,
)
