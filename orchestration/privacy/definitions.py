"""Privacy domain: the erasure job. Consent gates (checks.consent_check) are attached by the
modules that build each audience."""

import dagster as dg

from orchestration.privacy.jobs import erasure_job

defs = dg.Definitions(jobs=[erasure_job])
