"""Checks on ingestion: no row is lost between the landing files and raw (blocking), and no
landing file waits rejected (a warning)."""

import dagster as dg

from c360.contracts import SOURCES
from c360.settings import get_settings
from orchestration.ingest.assets import raw_key
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource


def build_conservation_check(source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(source),
        name="rows_conserved",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description="Every landing row is either loaded or quarantined: rows in = loaded + quarantined, "
        "per file, and raw holds exactly the loaded rows.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            bad_files = con.execute(
                "select file, rows_in, rows_loaded, rows_quarantined from raw._load_log "
                "where source = ? and rows_in <> rows_loaded + rows_quarantined",
                [source],
            ).fetchall()
            logged = con.execute(
                "select coalesce(sum(rows_loaded), 0), coalesce(sum(rows_in), 0), "
                "coalesce(sum(rows_quarantined), 0) from raw._load_log where source = ?",
                [source],
            ).fetchone()
            in_raw = con.execute(f"select count(*) from raw.{source}").fetchone()[0]
        passed = not bad_files and logged[0] == in_raw
        return dg.AssetCheckResult(
            passed=passed,
            metadata={
                "rows_in": int(logged[1]),
                "rows_loaded": int(logged[0]),
                "rows_quarantined": int(logged[2]),
                "rows_in_raw": int(in_raw),
                "files_not_conserved": [f[0] for f in bad_files],
            },
        )

    return _check


def build_accepted_check(source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(source),
        name="landing_files_accepted",
        blocking=False,
        pool=WAREHOUSE_POOL,
        description="Every file in the landing folder was loaded (or was empty). A rejected file does not stop "
        "the run; this warns while one still lies in landing with the bytes that were rejected.",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            latest = con.execute(
                "select file, status, reason, run_id from raw._load_log where source = ? "
                "qualify row_number() over (partition by file order by loaded_at desc, rowid desc) = 1",
                [source],
            ).fetchall()
        landing = get_settings().landing
        # A rejected file that was since removed, or replaced by bytes that loaded, is settled.
        waiting = [
            (f, reason, run)
            for f, status, reason, run in latest
            if status == "rejected" and (landing / f).exists()
        ]
        return dg.AssetCheckResult(
            passed=not waiting,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "files_rejected": len(waiting),
                "rejected_in_this_run": sum(run == context.run.run_id for _, _, run in waiting),
                "rejected_files": [f"{f}: {r}" for f, r, _ in waiting],
            },
        )

    return _check


ingest_checks = [build_conservation_check(source) for source in SOURCES]
landing_checks = [build_accepted_check(source) for source in SOURCES]
