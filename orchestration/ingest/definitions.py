import dagster as dg

from orchestration.ingest.assets import ingest_assets
from orchestration.ingest.checks import ingest_checks, landing_checks

defs = dg.Definitions(assets=ingest_assets, asset_checks=ingest_checks + landing_checks)
