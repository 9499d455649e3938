"""Activation domain: the audiences marketing exports (retention, cart abandoners, recommendation
e-mails), each holding consenting customers only."""

import dagster as dg

from orchestration.activation.assignments import campaign_assignments
from orchestration.activation.cart_abandoned import cart_abandoned
from orchestration.activation.recommendations_email import (
    recommendations_email,
    recommendations_email_consented,
)
from orchestration.activation.retention import retention_high_risk

defs = dg.Definitions(
    assets=[retention_high_risk, cart_abandoned, recommendations_email, campaign_assignments],
    asset_checks=[recommendations_email_consented],
)
