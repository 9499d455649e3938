"""raw.ecommerce_orders: web and app orders; daily revenue is watched for drift."""

from expectations.suite import Drift, at_least, raw_suite

suite = raw_suite(
    "ecommerce_orders",
    extra_rows=lambda now: [at_least("amount", 0)],
    drift=Drift(time_column="ordered_at", value="amount", label="revenue"),
)
