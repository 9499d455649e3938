"""raw.web_events: clickstream; daily event volume is watched for drift."""

from expectations.suite import Drift, raw_suite

suite = raw_suite(
    "web_events",
    references={"events_with_unknown_product": ("product_id", "raw.products", "product_id")},
    drift=Drift(time_column="occurred_at", label="events"),
)
