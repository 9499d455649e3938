"""raw.marketing_consent: opt-in and opt-out events per CRM record and channel."""

from expectations.suite import raw_suite

# Consent for a CRM record that was quarantined is legitimate, so no referential check here.
suite = raw_suite("marketing_consent")
