"""raw.crm_customers: CRM profiles (contact details only as pseudonyms, tokens and masks)."""

from expectations.suite import at_least, raw_suite

suite = raw_suite(
    "crm_customers",
    extra_rows=lambda now: [at_least("signup_date", None, now.date())],
    max_lag_days=60,  # profile updates are sparse
)
