"""Ingestion assets: one per landing source, landing files -> raw.<source>."""

import dagster as dg

from c360.contracts import SOURCES
from c360.ingest.loader import FileLoad, load_source, quarantine_duplicate_orders
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
        description=f"{SOURCES[source].description} Loaded from $C360_HOME/landing/{source}/ file by file.",
        deps=[raw_key("products")] if unit in NEEDS_PRODUCTS else [],
        metadata={"dagster/column_schema": _column_schema(source), "landing_key": SOURCES[source].key},
        skippable=True,
    )


def _summary(loads: list[FileLoad]) -> dict:
    new = [l for l in loads if not l.skipped]
    return {
        "files_loaded": len(new),
        "files_already_loaded": len(loads) - len(new),
        "rows_in": sum(l.rows_in for l in new),
        "rows_loaded": sum(l.rows_loaded for l in new),
        "rows_quarantined": sum(l.rows_quarantined for l in new),
        "extra_columns_ignored": sorted({c for l in new for c in l.extra_columns}),
    }


def build_ingest_assets(unit: str, sources: tuple[str, ...]) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"ingest_{unit}",
        specs=[_spec(s, unit) for s in sources],
        pool=WAREHOUSE_POOL,
        can_subset=False,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    )
    def _ingest(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        settings = get_settings()
        keyring = Keyring.load(settings)
        errors = []
        results = {}
        with warehouse.connect() as con:
            for source in sources:
                loads, errs = load_source(con, source, settings.landing, keyring, run_id=context.run.run_id)
                errors += errs
                results[source] = loads
            duplicates = quarantine_duplicate_orders(con, context.run.run_id) if unit == "ecommerce" else 0
            totals = {s: con.execute(f"select count(*) from raw.{s}").fetchone()[0] for s in sources}
        if errors:
            raise dg.Failure(
                description="Landing files break the contract and were not loaded:\n"
                + "\n".join(f"- {e}" for e in errors)
                + "\nFix the files (or the contract in c360/contracts.py) and re-run; files already "
                "loaded are skipped by checksum.",
                metadata={"files": [str(e.file) for e in errors], "columns": [e.column for e in errors]},
            )
        for source in sources:
            meta = _summary(results[source]) | {"dagster/row_count": totals[source]}
            if source == "ecommerce_orders":
                meta["duplicate_orders_quarantined"] = duplicates
            yield dg.MaterializeResult(asset_key=raw_key(source), metadata=meta)

    return _ingest


ingest_assets = [build_ingest_assets(unit, sources) for unit, sources in LOAD_UNITS.items()]
