"""Blocking data-quality gates: the Great Expectations suites of ``expectations/`` on every raw
table and on the key marts. A failing gate stops everything downstream of its asset."""

import dagster as dg

from c360.contracts import SOURCES
from c360.settings import get_settings
from expectations.runner import SuiteOutcome, load_suite, validate_suite
from orchestration.ingest.assets import raw_key
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

GATE_NAME = "quality_gate"


# Where `make ui` serves the Data Docs site (loopback only).
DATA_DOCS_URL = "http://127.0.0.1:8581"


def docs_root():
    return get_settings().data_docs


def check_result(outcome: SuiteOutcome) -> dg.AssetCheckResult:
    counts = {
        f"{e['part']}:{e['expectation']}({e['column'] or ''})": {
            "passed": e["success"],
            "evaluated": e["evaluated"],
            "unexpected": e["unexpected"],
        }
        for e in outcome.expectations
    }
    metadata = {
        "expectations_evaluated": len(outcome.expectations),
        "expectations_failed": len(outcome.failed),
        "failed": [
            f"{e['expectation']}({e['column'] or ''}): {e['unexpected']} unexpected" for e in outcome.failed
        ],
        "counts": dg.MetadataValue.json(counts),
        "rows_validated": outcome.rows_validated,
        "rows_loaded_after": str(outcome.rows_loaded_after) if outcome.rows_loaded_after else "all rows",
        "keys_and_references_judged_on": (
            f"rows loaded after {outcome.rows_loaded_after} and the rows sharing their keys"
            if outcome.facts_on_increment
            else "the whole table"
        ),
        "validation_seconds": outcome.seconds,
    }
    if outcome.no_data:
        metadata["no_data"] = outcome.no_data
    if outcome.drift:
        metadata["drift"] = dg.MetadataValue.json(outcome.drift)
    if outcome.docs_page:
        metadata["data_docs"] = dg.MetadataValue.path(str(outcome.docs_page))
        site = get_settings().data_docs_site
        page = (
            outcome.docs_page.relative_to(site).as_posix() if outcome.docs_page.is_relative_to(site) else None
        )
        metadata["data_docs_url"] = dg.MetadataValue.url(
            f"{DATA_DOCS_URL}/{page}" if page else outcome.docs_page.as_uri()
        )
    return dg.AssetCheckResult(passed=outcome.success, metadata=metadata)


def build_quality_gate(
    asset_key: dg.AssetKey, suite_name: str, incremental: bool = False
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key,
        name=GATE_NAME,
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=f"Great Expectations suite {suite_name} (expectations/): required fields, formats, "
        "ranges, accepted values, keys, references, row counts, freshness and drift. Blocks downstream.",
    )
    def _gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            outcome = validate_suite(
                con,
                load_suite(suite_name),
                docs_root=docs_root(),
                run_name=context.run.run_id,
                incremental=incremental,
            )
        return check_result(outcome)

    return _gate


def mart_keys() -> dict[str, dg.AssetKey]:
    from orchestration.dbt.assets import dbt_key

    return {name: dbt_key(name) for name in ("customer_360", "identity_map")}


# Raw tables only grow: their row rules run on the rows loaded since the gate last passed
# (expectations/runner.py). The identity map likewise judges the records written since it last
# passed (expectations/identity_map.py); customer_360 is validated whole (its date-relative
# columns change for everyone each day).
INCREMENTAL_MARTS = {"identity_map"}
raw_gates = [build_quality_gate(raw_key(source), f"raw.{source}", incremental=True) for source in SOURCES]
mart_gates = [
    build_quality_gate(key, f"marts.{name}", incremental=name in INCREMENTAL_MARTS)
    for name, key in mart_keys().items()
]
quality_checks = raw_gates + mart_gates
