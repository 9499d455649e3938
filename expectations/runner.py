"""Run a quality suite against the DuckDB warehouse with Great Expectations, and build Data Docs.

Great Expectations decides every gate, and no row leaves DuckDB to let it: for each part of a
suite (row rules over the table or the rows loaded since the last pass, table facts, daily
totals) one DuckDB aggregate query computes the metrics GX's expectations ask for, and each
expectation's own ``metrics_validate`` judges them (``expectations.sql_metrics``). The three
parts are stored as one GX validation result, so Data Docs show one page per suite and run with
each expectation's evaluated and unexpected counts. (GX's own SQL engine returns empty metrics on
DuckDB with GX 1.24 + duckdb-engine; its pandas engine needed every row in Python.)
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from expectations.sql_metrics import evaluate, quote, sql_literal
from expectations.suite import NEW_ROWS, Drift, QualitySuite

if TYPE_CHECKING:
    import pandas as pd

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


# Row expectations judge each row on its own (types, formats, ranges, accepted values): a row that
# passed once passes again. So a raw table's gate validates only rows loaded since the rows it
# last passed. Keys and references are judged the same way (``QualitySuite.increment_facts``: the
# new rows, and the old rows sharing a key with them); counts, freshness and drift are cheap
# whole-table aggregates, run every time. The watermark is kept per suite with a fingerprint of
# its row rules and increment facts: a changed rule set validates the whole table again; a failed
# gate keeps the old watermark, so its rows are validated again next run.
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
    ] + [f"{name}: {sql}" for name, sql in sorted((suite.increment_facts | suite.increment_shared).items())]
    return hashlib.sha256("\n".join(rendered).encode()).hexdigest()[:16]


def _has_window_column(con, suite: QualitySuite) -> bool:
    schema, name = (suite.window_table or suite.table).split(".", 1)
    return bool(
        con.execute(
            "select count(*) from information_schema.columns "
            "where table_schema = ? and table_name = ? and column_name = ?",
            [schema, name, suite.window_column],
        ).fetchall()[0][0]
    )


def validated_through(con, suite: QualitySuite) -> datetime | None:
    """Load time up to which the suite's row rules (as they are now) passed, or None."""
    return watermark(con, suite.name, rules_fingerprint(suite))


def record_validated(con, suite: QualitySuite, loaded_through: datetime | None, run_name: str) -> None:
    record_watermark(con, suite.name, rules_fingerprint(suite), loaded_through, run_name)


def watermark(con, name: str, fingerprint: str) -> datetime | None:
    """Up to when the check ``name``, with these rules, last passed (None: never, or other rules).
    Shared by the gates and the other checks that judge an increment (ml/recommendations)."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'quality' and table_name = 'gate_watermarks'"
    ).fetchall()[0][0]
    if not exists:
        return None
    rows = con.execute(
        "select loaded_through from quality.gate_watermarks where suite = ? and rules_fingerprint = ?",
        [name, fingerprint],
    ).fetchall()
    return rows[0][0] if rows else None


def record_watermark(con, name: str, fingerprint: str, through: datetime | None, run_name: str) -> None:
    if through is None:
        return
    con.execute("create schema if not exists quality")
    con.execute(WATERMARKS_DDL)
    con.execute(
        "insert or replace into quality.gate_watermarks values (?, ?, ?, ?, ?)",
        [name, through, fingerprint, run_name, datetime.now().replace(microsecond=0)],
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
    seconds: float
    drift: dict = field(default_factory=dict)
    # Incremental row validation: rows loaded after this time were validated (None: all rows).
    rows_loaded_after: datetime | None = None
    docs_page: Path | None = None
    docs_index: Path | None = None
    # Keys and references were judged on the rows loaded after ``rows_loaded_after`` (and the
    # rows sharing their keys), not on the whole table.
    facts_on_increment: bool = False
    # Set when the table had no data to judge (``QualitySuite.no_data``): why the gate passed.
    no_data: str | None = None

    @property
    def failed(self) -> list[dict]:
        return [e for e in self.expectations if not e["success"]]


# --- GX context (stores results and builds Data Docs) ------------------------------------------

_CONTEXTS: dict[str, object] = {}


# Validation results the Data Docs index lists: the newest, about the last five runs of every suite.
DOCS_INDEX_RESULTS = 60


def gx_context(docs_root: Path):
    """A file context under ``docs_root``: it keeps results, so Data Docs list every run."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _share_compiled_docs_templates()
    key = str(docs_root)
    if key not in _CONTEXTS:
        docs_root.mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=str(docs_root))
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        # The index page reads back every stored result to list it (3-10 ms each, by suite):
        # with no limit every gate of a run grew with the history, 13 results a run (raw.products:
        # 0.24 s with 2 stored, 0.72 s with 150; after 100 daily runs, 4-13 s a gate). It lists
        # the newest ones; every result stays in the store and every page in the site, and
        # Dagster keeps each gate's outcome.
        sites = ctx.variables.data_docs_sites or {}  # a copy: set back below
        for site in sites.values():
            site.setdefault("site_index_builder", {"class_name": "DefaultSiteIndexBuilder"})
            site["site_index_builder"]["validation_results_limit"] = DOCS_INDEX_RESULTS
        ctx.variables.data_docs_sites = sites
        _CONTEXTS[key] = ctx
    return _CONTEXTS[key]


def _share_compiled_docs_templates() -> None:
    """Data Docs pages are rendered by a view that builds a new Jinja environment each time, so
    every gate compiled the same 36 templates again: 0.72 of the 1.3 s a gate's Data Docs took
    (profiled on the 100k-customer warehouse), about 8 s of every run's 11 gates. The views of
    this process share one bytecode cache instead. Pages are unchanged (same templates, same
    code); if the view ever stops building ``self.env``, the pages are rendered as before."""
    from great_expectations.render.view.view import DefaultJinjaView
    from jinja2 import BytecodeCache

    if getattr(DefaultJinjaView, "_c360_shared_cache", None) is not None:
        return

    class CompiledTemplates(BytecodeCache):
        """In memory: a bucket's key is the template's name and a checksum of its source, so a
        template is compiled once per process."""

        def __init__(self) -> None:
            self._code: dict[str, bytes] = {}

        def load_bytecode(self, bucket) -> None:
            code = self._code.get(bucket.key)
            if code is not None:
                bucket.bytecode_from_string(code)

        def dump_bytecode(self, bucket) -> None:
            self._code[bucket.key] = bucket.bytecode_to_string()

    cache = CompiledTemplates()
    init = DefaultJinjaView.__init__

    def __init__(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        env = getattr(self, "env", None)
        if env is not None and env.bytecode_cache is None:
            env.bytecode_cache = cache

    DefaultJinjaView.__init__ = __init__
    DefaultJinjaView._c360_shared_cache = cache


# --- the three parts ----------------------------------------------------------------------------


def window_rows(suite: QualitySuite, window: tuple[datetime | None, datetime]) -> str:
    """The rows loaded (or written) in ``window`` = (after, up to), as a parenthesised subquery."""
    after, upto = window
    column = quote(suite.window_column)
    where = f"{column} <= {sql_literal(upto)}"
    if after is not None:
        where = f"{column} > {sql_literal(after)} and {where}"
    return f"(select * from {suite.window_table or suite.table} where {where})"


def row_relation(suite: QualitySuite, window: tuple[datetime | None, datetime] | None = None) -> str:
    """The rows the row rules judge: the table, or the rows loaded in ``window``."""
    return f"{window_rows(suite, window)} loaded" if window else suite.table


def _validate_rows(con, suite: QualitySuite, now: datetime, window=None):
    """Row rules over the table (or the window), all counted in one DuckDB pass."""
    expectations = suite.row_expectations(now)
    if not expectations:
        return [], 0
    return evaluate(con, row_relation(suite, window), expectations, ROW_RESULT_FORMAT)


def facts_relation(suite: QualitySuite, window: tuple[datetime, datetime] | None = None) -> str:
    """The suite's facts as one row, one column per fact; with ``window``, the facts that have an
    increment form judge only the rows loaded in it (and the rows those touch)."""
    facts = dict(suite.facts)
    relations = dict(suite.shared)
    if window:
        rows = window_rows(suite, window)
        facts |= {name: sql.replace(NEW_ROWS, rows) for name, sql in suite.increment_facts.items()}
        relations |= {name: sql.replace(NEW_ROWS, rows) for name, sql in suite.increment_shared.items()}
    columns = ", ".join(f"({sql}) as {quote(name)}" for name, sql in facts.items())
    # Only the shared relations a fact still reads: a materialised CTE is computed even unread,
    # and on an increment the facts that read it may all have been replaced.
    shared = ", ".join(
        f"{quote(name)} as materialized ({sql})"
        for name, sql in relations.items()
        if any(re.search(rf"\b{re.escape(name)}\b", fact) for fact in facts.values())
    )
    return f"({f'with {shared} ' if shared else ''}select {columns}) facts"


def _validate_facts(con, suite: QualitySuite, window=None):
    if not suite.fact_expectations:
        return []
    relation = facts_relation(suite, window)
    return evaluate(con, relation, suite.fact_expectations, AGGREGATE_RESULT_FORMAT)[0]


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


def _validate_drift(con, suite: QualitySuite):
    if suite.drift is None:
        return [], {}
    import great_expectations as gx

    daily = daily_totals(con, suite.table, suite.drift)
    info = drift_bounds(daily, suite.drift)
    if "skipped" in info:
        return [], info
    column = f"daily_{suite.drift.label}"
    checked = trim_stragglers(daily).tail(suite.drift.check_days)
    # The judged days as a small literal relation: a handful of daily totals, never rows.
    values = ", ".join(
        f"({i}, {sql_literal(day)}, {sql_literal(float(total))})"
        for i, (day, total) in enumerate(zip(checked["day"].astype(str), checked["total"]))
    )
    relation = f"(select * from (values {values}) v(_ord, day, {quote(column)})) daily"
    expectation = gx.expectations.ExpectColumnValuesToBeBetween(
        column=column,
        min_value=info["lower"],
        max_value=info["upper"],
        meta={
            "learned_from": f"ln(1 + daily {suite.drift.label}): mean ± {suite.drift.k}·sd of the "
            f"{info['history_days']} days before the latest {info['checked_days']}"
        },
    )
    return evaluate(con, relation, [expectation], AGGREGATE_RESULT_FORMAT, order_by="_ord")[0], info


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
    window = None
    if incremental and _has_window_column(con, suite):
        upto = con.execute(
            f"select max({quote(suite.window_column)}) from {suite.window_table or suite.table}"
        ).fetchall()[0][0]
        if upto is not None:
            window = (validated_through(con, suite), upto)
    rows, n_rows = _validate_rows(con, suite, now, window)
    # Keys and references on the increment only once the gate has passed before: the first
    # pass (and the first after a rule change) judges the whole table.
    facts_window = window if window and window[0] is not None else None
    facts = _validate_facts(con, suite, facts_window)
    drift, drift_info = _validate_drift(con, suite)
    parts = [(r, "rows") for r in rows] + [(r, "facts") for r in facts] + [(r, "drift") for r in drift]
    described = [_describe(r, part) for r, part in parts]
    success = all(d["success"] for d in described)
    outcome = SuiteOutcome(
        suite=suite.name,
        success=success,
        expectations=described,
        rows_validated=n_rows,
        seconds=0.0,
        drift=drift_info,
        rows_loaded_after=window[0] if window else None,
        facts_on_increment=facts_window is not None and bool(suite.increment_facts),
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
                "batch_markers": {"rows_validated": n_rows},
                "batch_spec": {"table": suite.table},
            },
        )
        outcome.docs_page, outcome.docs_index = _store_and_build_docs(
            gx_context(docs_root), combined, suite, run_name
        )
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
