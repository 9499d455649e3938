"""Ingestion assets: one per landing source, landing files -> raw.<source>."""

from datetime import datetime

import dagster as dg
import duckdb

from c360.contracts import SOURCES
from c360.ingest.loader import (
    REJECTED,
    FileLoad,
    ensure_tables,
    file_checksum,
    landing_files,
    load_source,
    logged,
    note_seen,
    quarantine_duplicate_orders,
)
from c360.privacy.keys import Keyring
from c360.settings import get_settings
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

# Sources loaded together: an order line can only be judged against its order, and a
# re-submitted order is only recognisable with its lines.
LOAD_UNITS: dict[str, tuple[str, ...]] = {
    "crm_customers": ("crm_customers",),
    "products": ("products",),
    "ecommerce": ("ecommerce_orders", "ecommerce_order_items"),
    "web_events": ("web_events",),
    "pos_transactions": ("pos_transactions",),
    "service_tickets": ("service_tickets",),
    "product_reviews": ("product_reviews",),
    "marketing_consent": ("marketing_consent",),
}
# Lines of orders and receipts are checked against the catalogue.
NEEDS_PRODUCTS = {"ecommerce", "pos_transactions"}

# The mart the daily refresh exists for: built after the last file load, nothing is stale.
BUILT_FROM_RAW = dg.AssetKey(["marts", "customer_360"])
# Run tag that turns the nothing-new skip off (`c360 run --rebuild`): a changed dbt model or
# contract must be rebuildable on a day without new files.
REBUILD_TAG = "c360/rebuild"


def raw_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source])


def _column_schema(source: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type.lower(),
                description=c.description,
                tags={"classification": c.pii},
                constraints=dg.TableColumnConstraints(nullable=not c.required),
            )
            for c in SOURCES[source].columns
        ]
    )


def _spec(source: str, unit: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=raw_key(source),
        group_name="ingest",
        kinds={"duckdb", "csv"},
        description=f"{SOURCES[source].description} Loaded from $C360_HOME/landing/{source}/ in batches of files, logged file by file.",
        deps=[raw_key("products")] if unit in NEEDS_PRODUCTS else [],
        metadata={"dagster/column_schema": _column_schema(source), "landing_key": SOURCES[source].key},
        skippable=True,
    )


def _summary(loads: list[FileLoad]) -> dict:
    new = [l for l in loads if not l.skipped]
    rejected = [l for l in new if l.status == REJECTED]
    return {
        "files_loaded": len(new) - len(rejected),
        "files_already_loaded": len(loads) - len(new),
        "files_rejected": len(rejected),
        # "file: reason", as the run summary lists them (cli/runner.py).
        "rejected_files": [f"{l.file}: {l.reason}" for l in rejected],
        "files_empty": [l.file for l in new if l.status == "empty"],
        "files_decoded": {l.file: l.encoding for l in new if l.encoding not in (None, "utf-8", "utf-8-sig")},
        "nul_bytes_removed": sum(l.nul_bytes_removed for l in new),
        "rows_in": sum(l.rows_in for l in new),
        "rows_loaded": sum(l.rows_loaded for l in new),
        "rows_quarantined": sum(l.rows_quarantined for l in new),
        "extra_columns_ignored": sorted({c for l in new for c in l.extra_columns}),
        "optional_columns_absent": sorted({c for l in new if l.status != REJECTED for c in l.absent_columns}),
    }


def unchanged_since(
    con, instance: dg.DagsterInstance, landing, sources, note: bool = False
) -> datetime | None:
    """The last file load, when nothing has come in since the last build of ``BUILT_FROM_RAW``:
    every landing file of every source seen by the loader under its name, size and modification
    time, with bytes the load log holds (``raw._landing_seen``: hashing every other source's files
    in each ingest step would read the whole landing again), and that build later than the last
    load. So old bytes re-sent under a new name are nothing new, and a file overwritten under its
    old name is new. None when something is new, or stale (a run that loaded but did not build,
    or whose build then failed or was cancelled). With ``note`` (a writable connection), files
    hashed here whose bytes were loaded are noted in ``raw._landing_seen``.

    Every ingest step decides alike, so on a day without new files none of them materializes and
    Dagster skips every step downstream (the raw specs are ``skippable``). A day where one source
    has files: its step loads them and every ingest step sees the later load, so all of them
    materialize and dbt runs (one missing raw input would skip it)."""
    last_load = con.execute("select max(loaded_at) from raw._load_log").fetchone()[0]
    if last_load is None:
        return None
    seen = {
        (source, file): (size, modified)
        for source, file, size, modified in con.execute(
            "select source, file, bytes, modified_ns from raw._landing_seen s where exists "
            "(select 1 from raw._load_log l where l.source = s.source and l.checksum = s.checksum)"
        ).fetchall()
    }
    for source in sources:
        for path in landing_files(landing, source):
            stat = path.stat()
            if seen.get((source, str(path.relative_to(landing)))) == (stat.st_size, stat.st_mtime_ns):
                continue
            # Not seen like this: hashed, as the loader would. Another source's step may not have
            # run yet in this run (or is skipped, as nothing is new), so its files are judged here
            # by their bytes, and noted when they were loaded, so that no later step or run reads
            # them again.
            checksum = file_checksum(path)
            if logged(con, source, checksum) is None:
                return None
            if note:
                seen_file = FileLoad(
                    source=source,
                    file=str(path.relative_to(landing)),
                    checksum=checksum,
                    bytes=stat.st_size,
                    modified_ns=stat.st_mtime_ns,
                )
                note_seen(con, seen_file, datetime.now().replace(microsecond=0))
    event = instance.get_latest_materialization_event(BUILT_FROM_RAW)
    # Load times are the loader's naive local clock; so is fromtimestamp.
    if event is None or datetime.fromtimestamp(event.timestamp) <= last_load:
        return None
    # A run that built the marts and then failed or was cancelled (a scoring step, a blocking
    # check) left work undone: rebuild, so that the next day retries it instead of skipping it.
    build = instance.get_run_by_id(event.run_id)
    if build is not None and build.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return None
    return last_load


def build_ingest_assets(unit: str, sources: tuple[str, ...]) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"ingest_{unit}",
        specs=[_spec(s, unit) for s in sources],
        pool=WAREHOUSE_POOL,
        can_subset=False,
        # A rejected file is logged, not raised, so nothing deterministic is left to retry; this
        # overrides the jobs' default policy, and a locked warehouse asks for a retry itself.
        retry_policy=dg.RetryPolicy(max_retries=0),
    )
    def _ingest(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        settings = get_settings()
        keyring = Keyring.load(settings)
        results = {}
        try:
            with warehouse.connect() as con:
                ensure_tables(con)
                for source in sources:
                    results[source], _ = load_source(
                        con, source, settings.landing, keyring, run_id=context.run.run_id
                    )
                duplicates = (
                    quarantine_duplicate_orders(con, context.run.run_id) if unit == "ecommerce" else 0
                )
                totals = {s: con.execute(f"select count(*) from raw.{s}").fetchone()[0] for s in sources}
                new_files = any(not l.skipped for source in sources for l in results[source])
                since = (
                    None
                    if new_files or context.run.tags.get(REBUILD_TAG) == "true"
                    else unchanged_since(con, context.instance, settings.landing, list(SOURCES), note=True)
                )
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():  # another process still holds the file after the wait
                raise dg.RetryRequested(max_retries=2, seconds_to_wait=30) from exc
            raise
        if since is not None:
            # Yielding nothing is the skip: the UI shows the downstream steps as skipped.
            context.log.info(
                f"no new landing files since {since:%Y-%m-%d %H:%M:%S} (last load; "
                f"{BUILT_FROM_RAW.to_user_string()} was built after it): {', '.join(sources)} not "
                f"materialized, so the steps that read them (dbt, gates, scoring) are skipped. "
                f"`c360 run --rebuild` (run tag {REBUILD_TAG}=true) builds them anyway."
            )
            return
        for source in sources:
            rejected = [l for l in results[source] if l.status == REJECTED and not l.skipped]
            if rejected:
                context.log.warning(
                    f"{len(rejected)} {source} file(s) rejected, the others loaded:\n"
                    + "\n".join(f"- {l.file}: {l.reason}" for l in rejected)
                    + "\nFix a file (or the contract in c360/contracts.py): changed bytes are tried again."
                )
            meta = _summary(results[source]) | {"dagster/row_count": totals[source]}
            if source == "ecommerce_orders":
                meta["duplicate_orders_quarantined"] = duplicates
            yield dg.MaterializeResult(asset_key=raw_key(source), metadata=meta)

    return _ingest


ingest_assets = [build_ingest_assets(unit, sources) for unit, sources in LOAD_UNITS.items()]
