"""Run a quality suite against the DuckDB warehouse with Great Expectations, and build Data Docs.

Rows are streamed out of DuckDB in Arrow record batches (``to_arrow_reader``) and validated batch by batch (counts
are summed), aggregates come from SQL, and the three parts are stored as one GX validation
result so Data Docs show one page per suite and run. GX's SQL path does not work on DuckDB
(GX 1.24 + duckdb-engine return empty metrics), hence pandas frames.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from expectations.suite import Drift, QualitySuite

MART_SUITES = ("customer_360", "identity_map")
# No unexpected values anywhere near rows: they could be pseudonyms, masks or worse.
ROW_RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
}
# Facts and daily totals are aggregates: showing the offending numbers helps.
AGGREGATE_RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 20,
    "include_unexpected_rows": False,
}
# Rows per GX validation. Each batch costs GX a fixed ~0.5 s of graph building and metric
# resolution whatever its size, so batches are large; 500k rows of the few columns the row
# expectations read are a few hundred MB of pandas at most, never the whole of a big table.
BATCH_ROWS = 500_000


# Row expectations judge each row on its own (types, formats, ranges, accepted values): a row that
# passed once passes again. So a raw table's gate validates only rows loaded since the rows it
# last passed (keys, references, counts and drift are whole-table SQL aggregates, run every
# time). The watermark is kept per suite with a fingerprint of its row rules: a changed rule set
# validates the whole table again; a failed gate keeps the old watermark, so its rows are
# validated again next run.
WATERMARKS_DDL = """
create table if not exists quality.gate_watermarks (
    suite varchar primary key,
    loaded_through timestamp,
    rules_fingerprint varchar,
    run_id varchar,
    validated_at timestamp
)"""
RULES_EPOCH = datetime(2000, 1, 1)  # rules rendered at a fixed time, for their fingerprint


def rules_fingerprint(suite: QualitySuite) -> str:
    rendered = [
        json.dumps(exp.configuration.to_json_dict(), sort_keys=True, default=str)
        for exp in suite.row_expectations(RULES_EPOCH)
    ]
    return hashlib.sha256("\n".join(rendered).encode()).hexdigest()[:16]


def _has_load_time(con, table: str) -> bool:
    schema, name = table.split(".", 1)
    return bool(
        con.execute(
            "select count(*) from information_schema.columns "
            "where table_schema = ? and table_name = ? and column_name = '_loaded_at'",
            [schema, name],
        ).fetchall()[0][0]
    )


def validated_through(con, suite: QualitySuite) -> datetime | None:
    """Load time up to which the suite's row rules (as they are now) passed, or None."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'quality' and table_name = 'gate_watermarks'"
    ).fetchall()[0][0]
    if not exists:
        return None
    rows = con.execute(
        "select loaded_through from quality.gate_watermarks where suite = ? and rules_fingerprint = ?",
        [suite.name, rules_fingerprint(suite)],
    ).fetchall()
    return rows[0][0] if rows else None


def record_validated(con, suite: QualitySuite, loaded_through: datetime | None, run_name: str) -> None:
    if loaded_through is None:
        return
    con.execute("create schema if not exists quality")
    con.execute(WATERMARKS_DDL)
    con.execute(
        "insert or replace into quality.gate_watermarks values (?, ?, ?, ?, ?)",
        [
            suite.name,
            loaded_through,
            rules_fingerprint(suite),
            run_name,
            datetime.now().replace(microsecond=0),
        ],
    )


def load_suite(name: str) -> QualitySuite:
    """``raw.<source>`` or ``marts.<model>`` -> its suite from ``expectations/<table>.py``."""
    return importlib.import_module(f"expectations.{name.split('.', 1)[1]}").suite


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    expectations: list[dict]  # one per expectation: kind, column, part, success, evaluated, unexpected
    rows_validated: int
    batches: int
    seconds: float
    drift: dict = field(default_factory=dict)
    # Incremental row validation: rows loaded after this time were validated (None: all rows).
    rows_loaded_after: datetime | None = None
    docs_page: Path | None = None
    docs_index: Path | None = None
    # Set when the table had no data to judge (``QualitySuite.no_data``): why the gate passed.
    no_data: str | None = None

    @property
    def failed(self) -> list[dict]:
        return [e for e in self.expectations if not e["success"]]


# --- GX context ---------------------------------------------------------------------------------

_CONTEXTS: dict[str, object] = {}


def gx_context(docs_root: Path | None):
    """A file context under ``docs_root`` (keeps results, so Data Docs list every run), or an
    ephemeral one when no docs are wanted."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    key = str(docs_root) if docs_root else ""
    _skip_batch_fingerprints()
    if key not in _CONTEXTS:
        if docs_root:
            docs_root.mkdir(parents=True, exist_ok=True)
            ctx = gx.get_context(mode="file", project_root_dir=str(docs_root))
        else:
            ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        _CONTEXTS[key] = ctx
    return _CONTEXTS[key]


def _skip_batch_fingerprints() -> None:
    """GX's pandas engine fingerprints every batch under 1 GB (a hash of every value) only to
    label it in batch markers; that was ~40% of a large gate's time after the fixes below, and
    the merged result carries its own markers (rows, batches). Its module threshold is the only
    switch: at 0 no frame is hashed. Validation itself is unchanged."""
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


def _batch_definition(ctx, part: str):
    try:
        source = ctx.data_sources.get("c360")
    except Exception:  # noqa: BLE001 - GX raises several kinds of "not found"
        source = ctx.data_sources.add_pandas("c360")
    try:
        asset = source.get_asset(part)
    except Exception:  # noqa: BLE001
        asset = source.add_dataframe_asset(part)
    try:
        return asset.get_batch_definition("frame")
    except Exception:  # noqa: BLE001
        return asset.add_batch_definition_whole_dataframe("frame")


def _validate_frame(ctx, part: str, frame: pd.DataFrame, name: str, expectations: list, result_format: dict):
    import great_expectations as gx
    from great_expectations.validator.v1_validator import Validator

    suite = gx.ExpectationSuite(name=name, expectations=[e.copy() for e in expectations])
    # The validator builds the batch itself; building it first with ``get_batch`` as well would
    # make GX fingerprint (hash every value of) the frame twice.
    validator = Validator(
        _batch_definition(ctx, part), result_format=result_format, batch_parameters={"dataframe": frame}
    )
    return validator.validate_expectation_suite(suite)


def _full_batches(reader, batch_rows: int):
    """Arrow tables of ``batch_rows`` rows (the last one shorter). DuckDB's reader also cuts at
    its row groups (122,880 rows), which left many small batches, each paying GX's fixed cost."""
    pending, n = [], 0
    for batch in reader:
        if batch.num_rows:
            pending.append(batch)
            n += batch.num_rows
        if n >= batch_rows:
            yield pa.Table.from_batches(pending)
            pending, n = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _gx_frame(batch: pa.Table) -> pd.DataFrame:
    """An Arrow table as the pandas frame GX checks fastest, with the same values.

    GX compares datetimes vectorised only on nanosecond columns and numbers only on int64 /
    float64 ones; DuckDB hands microsecond timestamps and int32 INTEGERs, which send GX's
    between-check through one Python call per value (most of a large gate's time). Timestamps
    are cast only when every value fits nanoseconds (years 1678-2261; a safe cast raises
    otherwise, and the column then stays exact and slow); narrow integers widen losslessly."""
    columns = []
    for column in batch.columns:
        kind = column.type
        if pa.types.is_timestamp(kind) and kind.unit != "ns":
            try:
                column = column.cast(pa.timestamp("ns", kind.tz))
            except pa.ArrowInvalid:
                pass
        elif pa.types.is_integer(kind) and kind.bit_width < 64:
            column = column.cast(pa.int64())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=batch.schema.names).to_pandas()


# --- merging batch results ----------------------------------------------------------------------


def _merge(results: list) -> list:
    """Sum per-expectation counts over batches; an expectation passes when it passed on every
    batch (the suites use no ``mostly``, so that is exact)."""
    from great_expectations.core import ExpectationValidationResult

    merged = []
    for parts in zip(*(r.results for r in results)):
        totals = {"element_count": 0, "unexpected_count": 0, "missing_count": 0}
        for p in parts:
            for k in totals:
                totals[k] += int((p.result or {}).get(k) or 0)
        nonmissing = totals["element_count"] - totals["missing_count"]
        result = dict(totals, partial_unexpected_list=[])
        result["unexpected_percent"] = 100.0 * totals["unexpected_count"] / nonmissing if nonmissing else 0.0
        result["missing_percent"] = (
            100.0 * totals["missing_count"] / totals["element_count"] if totals["element_count"] else 0.0
        )
        errors = [p.exception_info for p in parts if (p.exception_info or {}).get("raised_exception")]
        merged.append(
            ExpectationValidationResult(
                success=all(p.success for p in parts),
                expectation_config=parts[0].expectation_config,
                result=result,
                exception_info=errors[0]
                if errors
                else {"raised_exception": False, "exception_message": None, "exception_traceback": None},
            )
        )
    return merged


# --- the three parts ----------------------------------------------------------------------------


def _validate_rows(
    con,
    ctx,
    suite: QualitySuite,
    now: datetime,
    batch_rows: int,
    window: tuple[datetime | None, datetime] | None = None,
):
    """Row rules over the table, or over the rows loaded in ``window`` = (after, up to)."""
    expectations = suite.row_expectations(now)
    if not expectations:
        return [], 0, 0
    cols = ", ".join(f'"{c}"' for c in suite.columns_for_rows(now))
    where, params = "", []
    if window:
        after, upto = window
        where, params = "where _loaded_at <= ?", [upto]
        if after is not None:
            where, params = "where _loaded_at > ? and _loaded_at <= ?", [after, upto]
    reader = con.sql(f"select {cols} from {suite.table} {where}", params=params or None).to_arrow_reader(
        batch_rows
    )
    results, rows = [], 0
    for record_batch in _full_batches(reader, batch_rows):
        frame = _gx_frame(record_batch)
        rows += len(frame)
        results.append(_validate_frame(ctx, "rows", frame, suite.name, expectations, ROW_RESULT_FORMAT))
    if not results:  # an empty table: still show the expectations, all trivially met
        frame = con.execute(f"select {cols} from {suite.table} limit 0").df()
        results.append(_validate_frame(ctx, "rows", frame, suite.name, expectations, ROW_RESULT_FORMAT))
    return _merge(results), rows, len(results)


def table_facts(con, suite: QualitySuite) -> dict:
    return {name: con.execute(sql).fetchall()[0][0] for name, sql in suite.facts.items()}


def _validate_facts(con, ctx, suite: QualitySuite):
    if not suite.fact_expectations:
        return []
    facts = table_facts(con, suite)
    frame = pd.DataFrame(
        [
            {
                k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                for k, v in facts.items()
            }
        ]
    )
    return _validate_frame(
        ctx, "facts", frame, suite.name, suite.fact_expectations, AGGREGATE_RESULT_FORMAT
    ).results


def daily_totals(con, table: str, drift: Drift) -> pd.DataFrame:
    """One row per calendar day between the first and last event, empty days included."""
    t = drift.time_column
    return con.execute(
        f"""
        with agg as (
            select cast("{t}" as date) as day, sum({drift.value}) as total, count(*) as n
            from {table} where "{t}" is not null group by 1
        ),
        days as (
            select unnest(generate_series(min(day), max(day), interval 1 day))::date as day from agg
        )
        select d.day, coalesce(a.total, 0)::double as total, coalesce(a.n, 0) as n
        from days d left join agg a using (day) order by d.day
        """
    ).df()


# Trailing days with fewer rows than this share of the typical day are stragglers after the
# end of the data (a session running past midnight), not a day to judge; a source that stops
# altogether is caught by the freshness fact instead.
STRAGGLER_SHARE = 0.01


def trim_stragglers(daily: pd.DataFrame) -> pd.DataFrame:
    typical = daily["n"].median() if len(daily) else 0
    while len(daily) > 1 and daily["n"].iloc[-1] < STRAGGLER_SHARE * typical:
        daily = daily.iloc[:-1]
    return daily


def drift_bounds(daily: pd.DataFrame, drift: Drift) -> dict:
    """Bounds for the latest ``check_days`` learned from the ``history_days`` before them."""
    trimmed = trim_stragglers(daily)
    trailing, daily = len(daily) - len(trimmed), trimmed
    check = daily.tail(drift.check_days)
    history = daily.iloc[: max(len(daily) - drift.check_days, 0)].tail(drift.history_days)
    info = {
        "label": drift.label,
        "history_days": len(history),
        "checked_days": len(check),
        "trailing_days_ignored": trailing,
    }
    if len(history) < drift.min_history_days or history["n"].mean() < drift.min_rows_per_day:
        return info | {"skipped": "not enough history to learn from"}
    logs = [math.log1p(max(v, 0.0)) for v in history["total"]]
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    lower, upper = math.expm1(mean - drift.k * sd), math.expm1(mean + drift.k * sd)
    outside = check[(check["total"] < lower) | (check["total"] > upper)]
    return info | {
        "lower": round(lower, 2),
        "upper": round(upper, 2),
        "k": drift.k,
        "days_outside": [f"{d:%Y-%m-%d}: {v:,.2f}" for d, v in zip(outside["day"], outside["total"])],
    }


def _validate_drift(con, ctx, suite: QualitySuite):
    if suite.drift is None:
        return [], {}
    import great_expectations as gx

    daily = daily_totals(con, suite.table, suite.drift)
    info = drift_bounds(daily, suite.drift)
    daily = trim_stragglers(daily)
    if "skipped" in info:
        return [], info
    column = f"daily_{suite.drift.label}"
    frame = daily.tail(suite.drift.check_days).rename(columns={"total": column})[["day", column]]
    frame["day"] = frame["day"].astype(str)
    expectation = gx.expectations.ExpectColumnValuesToBeBetween(
        column=column,
        min_value=info["lower"],
        max_value=info["upper"],
        meta={
            "learned_from": f"ln(1 + daily {suite.drift.label}): mean ± {suite.drift.k}·sd of the "
            f"{info['history_days']} days before the latest {info['checked_days']}"
        },
    )
    return _validate_frame(
        ctx, "daily", frame, suite.name, [expectation], AGGREGATE_RESULT_FORMAT
    ).results, info


# --- one suite ----------------------------------------------------------------------------------


def _describe(result, part: str) -> dict:
    cfg = result.expectation_config
    res = result.result or {}
    evaluated = int(res.get("element_count") or 0) - int(res.get("missing_count") or 0)
    return {
        "expectation": cfg.type,
        "column": cfg.kwargs.get("column"),
        "part": part,
        "success": bool(result.success),
        "evaluated": evaluated,
        "unexpected": int(res.get("unexpected_count") or 0),
    }


def validate_suite(
    con: duckdb.DuckDBPyConnection,
    suite: QualitySuite,
    docs_root: Path | None = None,
    now: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
    run_name: str = "manual",
    incremental: bool = False,
) -> SuiteOutcome:
    """Validate one suite; with ``docs_root``, store the result and rebuild its Data Docs.

    ``incremental`` (raw tables): row rules run only on rows loaded since the suite last passed,
    and a pass moves that watermark (``quality.gate_watermarks``); needs a writable connection.
    """
    from great_expectations.core import ExpectationSuiteValidationResult

    started = time.perf_counter()
    now = now or datetime.now().replace(microsecond=0)
    ctx = gx_context(docs_root)
    window = None
    if incremental and _has_load_time(con, suite.table):
        upto = con.execute(f"select max(_loaded_at) from {suite.table}").fetchall()[0][0]
        if upto is not None:
            window = (validated_through(con, suite), upto)
    rows, n_rows, n_batches = _validate_rows(con, ctx, suite, now, batch_rows, window)
    facts = _validate_facts(con, ctx, suite)
    drift, drift_info = _validate_drift(con, ctx, suite)
    parts = [(r, "rows") for r in rows] + [(r, "facts") for r in facts] + [(r, "drift") for r in drift]
    described = [_describe(r, part) for r, part in parts]
    success = all(d["success"] for d in described)
    outcome = SuiteOutcome(
        suite=suite.name,
        success=success,
        expectations=described,
        rows_validated=n_rows,
        batches=n_batches,
        seconds=0.0,
        drift=drift_info,
        rows_loaded_after=window[0] if window else None,
    )
    if suite.no_data and con.execute(suite.no_data).fetchall()[0][0]:
        outcome.no_data = (
            f"no data: {suite.table} is empty and no landing row has reached it yet (no file, or only "
            "empty or rejected ones: see raw._load_log); the gate passes and judges it once rows land"
        )
    if window and success:
        record_validated(con, suite, window[1], run_name)
    if docs_root:
        results = [r for r, _ in parts]
        evaluated = len(results)
        passed = sum(1 for r in results if r.success)
        combined = ExpectationSuiteValidationResult(
            success=success,
            results=results,
            suite_name=suite.name,
            statistics={
                "evaluated_expectations": evaluated,
                "successful_expectations": passed,
                "unsuccessful_expectations": evaluated - passed,
                "success_percent": 100.0 * passed / evaluated if evaluated else 100.0,
            },
            meta={
                "great_expectations_version": _gx_version(),
                "active_batch_definition": {
                    "datasource_name": "c360",
                    "data_connector_name": "fluent",
                    "data_asset_name": suite.table,
                    "batch_identifiers": {},
                },
                "batch_markers": {"rows_validated": n_rows, "batches": n_batches},
                "batch_spec": {"table": suite.table},
            },
        )
        outcome.docs_page, outcome.docs_index = _store_and_build_docs(ctx, combined, suite, run_name)
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def _gx_version() -> str:
    import great_expectations as gx

    return gx.__version__


def _store_and_build_docs(ctx, result, suite: QualitySuite, run_name: str) -> tuple[Path | None, Path | None]:
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    suite_id = ExpectationSuiteIdentifier(name=suite.name)
    result.meta["run_id"] = run_id
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=suite.table
    )
    ctx.validation_results_store.store_validation_results(result, result_id, suite_id)
    index = ctx.build_data_docs(resource_identifiers=[result_id]).get("local_site")
    pages = ctx.get_docs_sites_urls(resource_identifier=result_id, site_name="local_site")
    page = pages[0]["site_url"] if pages else None
    return _file_path(page), _file_path(index)


def _file_path(url: str | None) -> Path | None:
    if not url:
        return None
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(url).path))
