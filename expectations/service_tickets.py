"""raw.service_tickets: customer-service tickets."""

from expectations.suite import equals_zero, raw_suite

suite = raw_suite(
    "service_tickets",
    facts={"closed_before_opened": "select count(*) from raw.service_tickets where closed_at < opened_at"},
    fact_expectations=equals_zero("closed_before_opened"),
    max_lag_days=60,  # tickets are rare in small shops
)
