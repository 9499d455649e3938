"""Great Expectations' column-map expectations judged from metrics DuckDB computes in one pass.

GX validates in two steps: an execution engine resolves the metrics an expectation declares it
needs (``get_validation_dependencies``: row count, null count, unexpected count, unexpected
values), then the expectation's own ``metrics_validate`` decides pass or fail (``mostly``
included) and shapes the result. GX's pandas engine needs every row in Python and its SQL engine
does not work on DuckDB, so this module is the first step for DuckDB: each expectation's
condition becomes a SQL predicate, all the counts of a relation come from one aggregate query,
and GX takes the second step as usual.

The predicates mean what GX's pandas engine means on the frames the gates used to build:
nulls (and NaN in float columns) are missing, not judged; regexes are Python ``re`` searches
(rewritten for RE2 by ``expectations.regex``); bounds and sets compare as pandas compares them,
and a bound or set member of a type pandas cannot compare with the column fails the expectation
(as pandas' TypeError did). What cannot be translated exactly fails with the reason, never with
a looser meaning. Unexpected values are fetched only when the result format asks for them
(aggregates); row expectations ask for none, so no row value leaves DuckDB.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

import duckdb

from expectations.regex import UnsupportedRegex, to_re2

INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
FLOAT_TYPES = {"FLOAT", "DOUBLE"}
TIMESTAMP_TYPES = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
NO_ERROR = {"raised_exception": False, "exception_message": None, "exception_traceback": None}


class NotTranslatable(ValueError):
    """An expectation (or one of its arguments) with no exact DuckDB translation."""


def family(duckdb_type: str) -> str:
    t = duckdb_type.upper()
    if t in INTEGER_TYPES:
        return "integer"
    if t in FLOAT_TYPES:
        return "float"
    if t.startswith("DECIMAL"):
        return "decimal"
    if t == "VARCHAR":
        return "string"
    if t == "DATE":
        return "date"
    if t in TIMESTAMP_TYPES:
        return "timestamp"
    if t == "TIMESTAMP WITH TIME ZONE":
        return "timestamptz"
    if t == "BOOLEAN":
        return "boolean"
    return t


NUMERIC = ("integer", "float", "decimal")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A SQL literal of exactly ``value`` (floats through their shortest exact repr)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"cast('{value!r}' as double)"
    if isinstance(value, datetime):
        kind = "timestamptz" if value.tzinfo else "timestamp"
        return f"{kind} '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"date '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise NotTranslatable(f"no SQL literal for a {type(value).__name__}")


def null_sql(column: str, fam: str) -> str:
    """Missing as pandas sees it: NULL, and NaN in a float column."""
    col = quote(column)
    return f"({col} is null or isnan({col}))" if fam == "float" else f"{col} is null"


def _comparable(column: str, fam: str, value: Any) -> tuple[str, Any]:
    """(operand, value) that DuckDB compares as pandas compares the column with ``value``."""
    col = quote(column)
    if fam in NUMERIC and isinstance(value, (int, float)) and not isinstance(value, bool):
        # numpy compares an integer column with an int exactly, with a float in float64.
        if fam == "integer" and isinstance(value, int):
            return col, value
        return f"cast({col} as double)", float(value)
    if fam == "date" and isinstance(value, date) and not isinstance(value, datetime):
        return col, value
    if fam == "timestamp" and isinstance(value, datetime) and value.tzinfo is None:
        return col, value
    if fam == "timestamptz" and isinstance(value, datetime) and value.tzinfo is not None:
        return col, value
    raise NotTranslatable(f"a {type(value).__name__} cannot be compared with a {fam} column")


def _between(column: str, fam: str, kwargs: dict) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        raise NotTranslatable("min_value and max_value cannot both be None")
    parts = []
    for bound, strict, op in ((low, "strict_min", ">"), (high, "strict_max", "<")):
        if bound is None:
            continue
        operand, value = _comparable(column, fam, bound)
        parts.append(f"{operand} {op if kwargs.get(strict) else op + '='} {sql_literal(value)}")
    if low is not None and high is not None and low > high:
        raise NotTranslatable("min_value cannot be greater than max_value")
    return " and ".join(parts)


def _in_set(column: str, fam: str, kwargs: dict) -> str:
    values = kwargs.get("value_set")
    if values is None:
        return "true"  # GX: vacuously true
    col = quote(column)
    if fam in NUMERIC:
        numbers = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
        if fam == "integer" and all(isinstance(v, int) for v in numbers):
            operand, members = col, [int(v) for v in numbers]
        else:
            operand, members = f"cast({col} as double)", [float(v) for v in numbers]
    elif fam == "string":
        operand, members = col, [v for v in values if isinstance(v, str)]
    elif fam == "boolean":
        operand, members = col, [v for v in values if isinstance(v, bool)]
    elif fam == "date":
        operand, members = col, [v for v in values if isinstance(v, date) and not isinstance(v, datetime)]
    elif fam == "timestamp":
        operand, members = col, [v for v in values if isinstance(v, datetime) and v.tzinfo is None]
    else:
        raise NotTranslatable(f"accepted values on a {fam} column")
    # Members of another type never equal a value of this column (pandas' isin): they drop out.
    if not members:
        return "false"
    return f"{operand} in ({', '.join(sql_literal(v) for v in dict.fromkeys(members))})"


def _match_regex(column: str, fam: str, kwargs: dict) -> str:
    if fam != "string":
        raise NotTranslatable(f"a regex on a {fam} column")
    try:
        pattern = to_re2(kwargs["regex"])
    except UnsupportedRegex as err:
        raise NotTranslatable(f"regex {kwargs['regex']!r}: {err}") from err
    return f"regexp_matches({quote(column)}, {sql_literal(pattern)})"


# map metric -> SQL condition a non-missing value meets; nonnull is judged on the null test alone.
CONDITIONS = {
    "column_values.nonnull": None,
    "column_values.between": _between,
    "column_values.in_set": _in_set,
    "column_values.match_regex": _match_regex,
}


class _Aggregates:
    """The select list of the one aggregate query, each distinct expression once."""

    def __init__(self) -> None:
        self.exprs: dict[str, str] = {}

    def add(self, expr: str) -> str:
        return self.exprs.setdefault(expr, f"m{len(self.exprs)}")


def _plan(exp, types: dict[str, str], result_format: dict, aggs: _Aggregates, order_by: str | None) -> dict:
    """metric configuration id -> alias in the aggregate query, or a constant (as ``("const", v)``)."""
    map_metric = getattr(exp, "map_metric", None)
    if map_metric not in CONDITIONS:
        raise NotTranslatable(
            f"{exp.expectation_type} is not judged in DuckDB (supported: {', '.join(_supported_types())})"
        )
    if exp.row_condition is not None:
        raise NotTranslatable("row_condition is not judged in DuckDB")
    if exp.column not in types:
        raise NotTranslatable(f'column "{exp.column}" does not exist')
    fam = family(types[exp.column])
    missing = null_sql(exp.column, fam)
    condition = CONDITIONS[map_metric]
    unexpected = (
        missing
        if condition is None
        else f"not ({missing}) and ({condition(exp.column, fam, exp.configuration.kwargs)}) is not true"
    )
    deps = exp.get_validation_dependencies(runtime_configuration={"result_format": dict(result_format)})
    n_values = int(deps.result_format.get("partial_unexpected_count") or 0)
    if deps.result_format.get("result_format") in ("BOOLEAN_ONLY", "COMPLETE"):
        raise NotTranslatable("the gates use SUMMARY or BASIC results (COMPLETE would list every value)")
    plan: dict = {}
    for name, config in deps.metric_configurations.items():
        if name == "table.row_count":
            source = aggs.add("count(*)")
        elif name == f"{map_metric}.unexpected_count":
            source = aggs.add(f"count(*) filter (where {unexpected})")
        elif name == "column_values.nonnull.unexpected_count":
            source = aggs.add(f"count(*) filter (where {missing})")
        elif name == f"{map_metric}.unexpected_values":
            order = f" order by {order_by}" if order_by else ""
            source = (
                aggs.add(f"list({quote(exp.column)}{order}) filter (where {unexpected})[1:{n_values}]")
                if n_values
                else ("const", [])
            )
        elif name in (f"{map_metric}.unexpected_index_list", f"{map_metric}.unexpected_index_query"):
            source = ("const", None)
        else:
            raise NotTranslatable(
                f"metric {name} is not computed in DuckDB (unexpected rows are never fetched)"
            )
        plan[config.id] = source
    return plan


def _supported_types() -> list[str]:
    return [
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_match_regex",
    ]


def _failed(exp, message: str):
    from great_expectations.core import ExpectationValidationResult

    return ExpectationValidationResult(
        success=False,
        expectation_config=exp.configuration,
        result={},
        exception_info={"raised_exception": True, "exception_message": message, "exception_traceback": None},
    )


def _redacted(err: Exception) -> str:
    """A DuckDB error without the quoted text in it (it may quote a value from a row)."""
    first = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: " + re.sub(r"(['\"]).*?\1", r"\1…\1", first)


def _run(con, relation: str, aggs: _Aggregates) -> dict[str, Any]:
    select = ", ".join(f"{expr} as {alias}" for expr, alias in aggs.exprs.items())
    [row] = con.execute(f"select {select} from {relation}").fetchall()
    return dict(zip(aggs.exprs.values(), row, strict=True))


def relation_types(con, relation: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"describe select * from {relation}").fetchall()}


def evaluate(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    expectations: list,
    result_format: dict,
    order_by: str | None = None,
) -> tuple[list, int]:
    """One ``ExpectationValidationResult`` per expectation over ``relation`` (a table name or a
    parenthesised, aliased subquery), decided by GX from counts of one DuckDB aggregate query,
    and the relation's row count. ``order_by`` orders unexpected values when the result format
    asks for some."""
    try:
        types = relation_types(con, relation)
    except duckdb.Error as err:
        return [_failed(exp, _redacted(err)) for exp in expectations], 0
    aggs, plans = _Aggregates(), []
    rows_alias = aggs.add("count(*)")
    for exp in expectations:
        try:
            plans.append(_plan(exp, types, result_format, aggs, order_by))
        except NotTranslatable as err:
            plans.append(str(err))
    try:
        values = _run(con, relation, aggs)
        rows = values[rows_alias]
    except duckdb.Error:
        values = None  # one expectation's SQL fails: judge each on its own to tell which
        try:
            rows = con.execute(f"select count(*) from {relation}").fetchall()[0][0]
        except duckdb.Error:
            rows = 0
    results = []
    for exp, plan in zip(expectations, plans, strict=True):
        if isinstance(plan, str):
            results.append(_failed(exp, plan))
            continue
        own = values
        if own is None:
            solo = _Aggregates()
            aliases = {
                key: solo.add(_expr_of(aggs, src)) for key, src in plan.items() if isinstance(src, str)
            }
            try:
                found = _run(con, relation, solo)
            except duckdb.Error as err:
                results.append(_failed(exp, _redacted(err)))
                continue
            own = {src: found[aliases[key]] for key, src in plan.items() if isinstance(src, str)}
        metrics = {key: (src[1] if isinstance(src, tuple) else own[src]) for key, src in plan.items()}
        metrics = {
            key: ([] if value is None and _is_values(key) else value) for key, value in metrics.items()
        }
        evr = exp.metrics_validate(metrics, runtime_configuration={"result_format": dict(result_format)})
        evr.exception_info = dict(NO_ERROR)
        results.append(evr)
    return results, rows


def _expr_of(aggs: _Aggregates, alias: str) -> str:
    return next(expr for expr, a in aggs.exprs.items() if a == alias)


def _is_values(metric_id) -> bool:
    return metric_id.metric_name.endswith(".unexpected_values")
