"""Privacy domain: the erasure job. Consent gates (checks.consent_check) are attached to each
audience by the activation domain."""

import dagster as dg

from orchestration.privacy.jobs import erasure_job

defs = dg.Definitions(jobs=[erasure_job])
