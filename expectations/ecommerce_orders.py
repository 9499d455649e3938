"""raw.ecommerce_orders: web and app orders; daily revenue is watched for drift."""

from expectations.suite import Drift, E, at_least, raw_suite


def currency():
    # Any ISO 4217 code: a shop in another country (Olist sells in BRL) is not a data error.
    return E.ExpectColumnValuesToMatchRegex(column="currency", regex=r"^[A-Z]{3}$")


suite = raw_suite(
    "ecommerce_orders",
    extra_rows=lambda now: [at_least("amount", 0), currency()],
    drift=Drift(time_column="ordered_at", value="amount", label="revenue"),
)
