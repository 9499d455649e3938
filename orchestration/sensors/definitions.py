"""Sensors on the landing zone: new files start a run, each file once (by checksum).

``landing_sensor``: a new file of any source but web_events -> that source's ingest asset and
everything downstream of it outside the ML groups (``landing_refresh_job``).
``clickstream_sensor``: a new web_events file -> load web_events and refresh
``activation/cart_abandoned`` only (``cart_abandonment_job``); the marts take clickstream in the
daily refresh. Both skip a tick while a run holds the warehouse (DuckDB has one writer per file,
and even a reader would block that writer).
"""

import dagster as dg

from c360.contracts import SOURCES
from c360.ingest import landing
from c360.settings import get_settings
from orchestration.activation.cart_abandoned import CART_ABANDONED_KEY, CartAbandonedConfig
from orchestration.automation.jobs import ML_SELECTION, cart_abandonment_job, landing_refresh_job
from orchestration.ingest.assets import LOAD_UNITS, raw_key

CLICKSTREAM_SOURCES = ["web_events"]
BATCH_SOURCES = [s for s in SOURCES if s not in CLICKSTREAM_SOURCES]
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _unit_keys(sources: set[str]) -> list[dg.AssetKey]:
    """Raw keys of every load unit touched (orders and their lines load together)."""
    return [raw_key(s) for members in LOAD_UNITS.values() if sources & set(members) for s in members]


def _warehouse_in_use(context: dg.SensorEvaluationContext) -> bool:
    return context.instance.get_runs_count(filters=dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES)) > 0


def _evaluate(
    context: dg.SensorEvaluationContext, sources: list[str], build_request
) -> dg.SensorResult | dg.SkipReason:
    if _warehouse_in_use(context):
        return dg.SkipReason("A run is using the warehouse; new files are picked up on a later tick.")
    settings = get_settings()
    requested = landing.read_cursor(context.cursor)
    try:
        files, unloaded = landing.scan(settings.landing, settings.warehouse, sources, requested)
    except landing.WarehouseBusy:
        return dg.SkipReason("The warehouse is locked by another process; retrying on the next tick.")
    cursor = landing.write_cursor(requested | {f.checksum for f in files}, unloaded)
    if not files:
        return dg.SensorResult(skip_reason="No new landing files.", cursor=cursor)
    context.log.info("New landing files: " + ", ".join(f"{f.source}/{f.path.name}" for f in files))
    return dg.SensorResult(run_requests=[build_request(context, files)], cursor=cursor)


def _tags(files: list[landing.LandingFile]) -> dict[str, str]:
    return {
        "c360/landing_files": str(len(files)),
        "c360/landing_sources": ",".join(sorted({f.source for f in files})),
    }


def _landing_request(context: dg.SensorEvaluationContext, files: list[landing.LandingFile]) -> dg.RunRequest:
    roots = _unit_keys({f.source for f in files})
    selection = dg.AssetSelection.assets(*roots).downstream() - ML_SELECTION
    keys = selection.resolve(context.repository_def.asset_graph)
    return dg.RunRequest(run_key=landing.run_key(files), asset_selection=sorted(keys), tags=_tags(files))


def _clickstream_request(
    context: dg.SensorEvaluationContext, files: list[landing.LandingFile]
) -> dg.RunRequest:
    config = CartAbandonedConfig(clock=landing.cart_clock())
    return dg.RunRequest(
        run_key=landing.run_key(files),
        run_config=dg.RunConfig(ops={CART_ABANDONED_KEY.to_python_identifier(): config}),
        tags=_tags(files),
    )


@dg.sensor(
    name="landing_sensor",
    job=landing_refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New files in $C360_HOME/landing/<source>/ (all sources but web_events) -> load them and "
    "rebuild what depends on them. Each file once, by SHA-256 (raw._load_log).",
)
def landing_sensor(context: dg.SensorEvaluationContext):
    return _evaluate(context, BATCH_SOURCES, _landing_request)


@dg.sensor(
    name="clickstream_sensor",
    job=cart_abandonment_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New files in $C360_HOME/landing/web_events/ -> load them and refresh "
    "activation/cart_abandoned (no dbt rebuild). Each file once, by SHA-256.",
)
def clickstream_sensor(context: dg.SensorEvaluationContext):
    return _evaluate(context, CLICKSTREAM_SOURCES, _clickstream_request)


defs = dg.Definitions(sensors=[landing_sensor, clickstream_sensor])
