import dagster as dg

from orchestration.quality.checks import quality_checks

defs = dg.Definitions(asset_checks=quality_checks)
