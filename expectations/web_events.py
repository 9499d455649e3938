"""raw.web_events: clickstream; daily event volume is watched for drift."""

from expectations.suite import Drift, equals_zero, orphans, raw_suite

suite = raw_suite(
    "web_events",
    facts={
        "events_with_unknown_product": orphans("raw.web_events", "product_id", "raw.products", "product_id")
    },
    fact_expectations=equals_zero("events_with_unknown_product"),
    drift=Drift(time_column="occurred_at", label="events"),
)
