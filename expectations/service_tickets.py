"""raw.service_tickets: customer-service tickets."""

from expectations.suite import NEW_ROWS, equals_zero, raw_suite


def closed_before_opened(rows: str) -> str:
    return f"select count(*) from {rows} t where closed_at < opened_at"


suite = raw_suite(
    "service_tickets",
    facts={"closed_before_opened": closed_before_opened("raw.service_tickets")},
    increment_facts={"closed_before_opened": closed_before_opened(NEW_ROWS)},
    fact_expectations=equals_zero("closed_before_opened"),
    max_lag_days=60,  # tickets are rare in small shops
)
