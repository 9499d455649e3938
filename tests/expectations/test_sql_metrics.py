"""The DuckDB evaluation of GX expectations means what GX's pandas engine means.

The oracle is today's former path: the rows handed to GX as the pandas frame the gate used to
build from DuckDB's Arrow output, validated by GX's own pandas engine. Both judge the same
awkward values (NULL, NaN, ±inf, -0.0, strings with a trailing newline or a non-breaking space,
timestamps outside the nanosecond range, boundaries, strict bounds, ``mostly``)."""

import re
from datetime import date, datetime, timedelta

import duckdb
import great_expectations as gx
import pyarrow as pa
import pytest

from expectations.regex import UnsupportedRegex, to_re2
from expectations.runner import AGGREGATE_RESULT_FORMAT, ROW_RESULT_FORMAT
from expectations.sql_metrics import evaluate
from expectations.suite import HASH_REGEX, MASK_REGEX, TOKEN_REGEX

E = gx.expectations
NOW = datetime(2025, 6, 1, 12, 0, 0, 123456)

STRINGS = [
    "USD", "USD\n", "usd", None, "a***@x.com", "a***@x\u00a0y.com", "", "web", "WEB", " web",
    "*******1234", "**** **** **** 1234", "v1:k-1:abc_", "v1:k:p\n", "0" * 64, "0" * 64 + "\n",
]  # fmt: skip
INTEGERS = [0, 1, 5, 6, -1, None, 2147483647, 3]
FLOATS = [0.0, -0.0, 1e-300, -1e-300, float("nan"), float("inf"), float("-inf"), None, 5.0, 5.000000001]
DATES = [date(2025, 6, 1), date(2025, 6, 2), None, date(1, 1, 1), date(9999, 12, 31)]
TIMESTAMPS = [
    NOW - timedelta(seconds=1), NOW, NOW + timedelta(microseconds=1), None,
    datetime(9999, 1, 1), datetime(1500, 1, 1),
]  # fmt: skip
BOOLEANS = [True, False, None]


@pytest.fixture
def con():
    con = duckdb.connect()
    n = 40
    columns = {"s": STRINGS, "i": INTEGERS, "f": FLOATS, "d": DATES, "t": TIMESTAMPS, "b": BOOLEANS}
    types = {"s": "varchar", "i": "integer", "f": "double", "d": "date", "t": "timestamp", "b": "boolean"}
    con.execute("create table t (" + ", ".join(f"{c} {types[c]}" for c in columns) + ")")
    rows = [[values[k % len(values)] for values in columns.values()] for k in range(n)]
    con.executemany("insert into t values (?, ?, ?, ?, ?, ?)", rows)
    yield con
    con.close()


def _frame_gx_was_given(table: pa.Table):
    """The pandas frame the former runner built for GX (``_gx_frame``): timestamps in
    nanoseconds where they fit, narrow integers widened."""
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_timestamp(kind) and kind.unit != "ns":
            try:
                column = column.cast(pa.timestamp("ns", kind.tz))
            except pa.ArrowInvalid:
                pass
        elif pa.types.is_integer(kind) and kind.bit_width < 64:
            column = column.cast(pa.int64())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.schema.names).to_pandas()


def gx_pandas(con, relation: str, expectations: list, result_format: dict) -> list:
    """GX's pandas engine on the relation's rows: the meaning the DuckDB path must keep."""
    frame = _frame_gx_was_given(con.sql(f"select * from {relation}").to_arrow_table())
    ctx = gx.get_context(mode="ephemeral")
    batch = (
        ctx.data_sources.add_pandas("oracle")
        .add_dataframe_asset("t")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name="oracle", expectations=[e.copy() for e in expectations])
    results = batch.validate(suite, result_format=result_format).results
    by_config = {_key(r.expectation_config): r for r in results}
    return [by_config[_key(e.configuration)] for e in expectations]


def _key(config) -> str:
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    return f"{config.type}:{sorted((k, repr(v)) for k, v in kwargs.items())}"


def _summary(result) -> tuple:
    res = result.result or {}
    return (
        bool(result.success),
        res.get("element_count"),
        res.get("unexpected_count"),
        res.get("missing_count"),
        bool((result.exception_info or {}).get("raised_exception")),
    )


def expectations_over_every_type() -> list:
    out = [E.ExpectColumnValuesToNotBeNull(column=c) for c in "sifdtb"]
    out += [
        E.ExpectColumnValuesToBeBetween(column="i", min_value=1, max_value=5),
        E.ExpectColumnValuesToBeBetween(column="i", min_value=1),
        E.ExpectColumnValuesToBeBetween(
            column="i", min_value=0, max_value=5, strict_min=True, strict_max=True
        ),
        E.ExpectColumnValuesToBeBetween(column="f", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="f", max_value=5, strict_max=True),
        E.ExpectColumnValuesToBeBetween(column="f", min_value=-1e-300, max_value=5.0),
        E.ExpectColumnValuesToBeBetween(column="d", max_value=NOW.date()),
        E.ExpectColumnValuesToBeBetween(column="d", min_value=date(1000, 1, 1)),
        E.ExpectColumnValuesToBeBetween(column="t", max_value=NOW),
        E.ExpectColumnValuesToBeBetween(column="t", min_value=datetime(1600, 1, 1), max_value=NOW),
        E.ExpectColumnValuesToBeInSet(column="s", value_set=["web", "app", "USD"]),
        E.ExpectColumnValuesToBeInSet(column="i", value_set=[1, 5, 1.5]),
        E.ExpectColumnValuesToBeInSet(column="i", value_set=[0, 1, 2, 3, 5, 6, -1]),
        E.ExpectColumnValuesToBeInSet(column="f", value_set=[0.0, 5]),
        E.ExpectColumnValuesToBeInSet(column="b", value_set=[True]),
        E.ExpectColumnValuesToBeInSet(column="s", value_set=[1, 2]),
        E.ExpectColumnValuesToBeBetween(column="i", min_value=1, mostly=0.5),
        E.ExpectColumnValuesToMatchRegex(column="s", regex=r"^[a-z]+$", mostly=0.2),
    ]
    regexes = [*MASK_REGEX.values(), TOKEN_REGEX, HASH_REGEX, r"^[A-Z]{3}$", r"\s", r"^\w+$", r"b$", r"^.*$"]
    out += [E.ExpectColumnValuesToMatchRegex(column="s", regex=r) for r in regexes]
    return out


def test_duckdb_counts_judged_by_gx_equal_gx_pandas_engine_on_awkward_values(con):
    expectations = expectations_over_every_type()
    expected = [_summary(r) for r in gx_pandas(con, "t", expectations, ROW_RESULT_FORMAT)]
    results, rows = evaluate(con, "t", expectations, ROW_RESULT_FORMAT)
    assert rows == 40
    assert [_summary(r) for r in results] == expected
    # Every kind both passes and fails somewhere above, so the comparison is not vacuous.
    assert {s[0] for s in expected} == {True, False}


def test_aggregate_results_list_the_offending_values_in_order_like_gx(con):
    expectations = [E.ExpectColumnValuesToBeBetween(column="i", min_value=1, max_value=5)]
    relation = "(select rowid as k, * from t where rowid < 8) first8"
    ours = evaluate(con, relation, expectations, AGGREGATE_RESULT_FORMAT, order_by="k")[0][0]
    theirs = gx_pandas(con, relation, expectations, AGGREGATE_RESULT_FORMAT)[0]
    assert (
        ours.result["partial_unexpected_list"]
        == theirs.result["partial_unexpected_list"]
        == [0, 6, -1, 2147483647]
    )
    assert ours.result["unexpected_count"] == theirs.result["unexpected_count"] == 4


def test_row_results_never_carry_a_value(con):
    expectations = [E.ExpectColumnValuesToMatchRegex(column="s", regex=MASK_REGEX["email"])]
    [result], _ = evaluate(con, "t", expectations, ROW_RESULT_FORMAT)
    assert not result.success and result.result["unexpected_count"] > 0
    assert result.result["partial_unexpected_list"] == []
    assert "a***@x.com" not in repr(result.to_json_dict())


def test_gx_decides_with_mostly(con):
    # 3 of the 7 non-null integers (43%) lie in [1, 5]: GX's mostly arithmetic decides.
    loose = E.ExpectColumnValuesToBeBetween(column="i", min_value=1, max_value=5, mostly=0.4)
    strict = E.ExpectColumnValuesToBeBetween(column="i", min_value=1, max_value=5, mostly=0.5)
    [a, b], _ = evaluate(con, "t", [loose, strict], ROW_RESULT_FORMAT)
    assert (a.success, b.success) == (True, False)
    assert a.result["unexpected_count"] == b.result["unexpected_count"]


def test_what_cannot_be_translated_fails_with_its_reason_and_the_rest_is_judged(con):
    expectations = [
        E.ExpectColumnValuesToMatchRegex(column="s", regex=r"(?i)usd"),
        E.ExpectColumnValuesToBeBetween(column="d", max_value=NOW),  # a date against a datetime
        E.ExpectColumnValuesToNotBeNull(column="no_such_column"),
        E.ExpectColumnValuesToBeUnique(column="s"),
        E.ExpectColumnValuesToNotBeNull(column="i"),
    ]
    results, _ = evaluate(con, "t", expectations, ROW_RESULT_FORMAT)
    messages = [r.exception_info["exception_message"] for r in results[:4]]
    assert all(not r.success and r.exception_info["raised_exception"] for r in results[:4])
    assert "group construct" in messages[0] and "cannot be compared" in messages[1]
    assert '"no_such_column" does not exist' in messages[2]
    assert "expect_column_values_to_be_unique is not judged in DuckDB" in messages[3]
    assert results[4].result["unexpected_count"] == 5  # 40 rows, INTEGERS has one None in 8


def test_a_failing_sql_predicate_is_isolated_and_its_message_quotes_no_value(con):
    con.execute("create table words as select 'li.wei@example.com' as w union all select '7'")
    # A view whose column w fails when read: the one combined query fails, then each
    # expectation is judged alone; only those reading w fail, with DuckDB's message redacted.
    con.execute("create view v as select cast(w as integer) as w, w as raw_w from words")
    reads_w = E.ExpectColumnValuesToBeBetween(column="w", min_value=0)
    other = E.ExpectColumnValuesToNotBeNull(column="raw_w")
    [bad, good], rows = evaluate(con, "v", [reads_w, other], ROW_RESULT_FORMAT)
    assert not bad.success and bad.exception_info["raised_exception"]
    assert "Conversion" in bad.exception_info["exception_message"]
    assert "li.wei" not in bad.exception_info["exception_message"]
    assert good.success and good.result["element_count"] == rows == 2


# --- the regex dialect ----------------------------------------------------------------------

ALPHABET = [
    "a",
    "A",
    "0",
    "\n",
    " ",
    "\u00a0",
    "\u2003",
    "_",
    "é",
    "\u0661",
    "*",
    "@",
    ".",
    "-",
    "\t",
    "\u216b",
]


def test_translated_regexes_match_exactly_what_python_re_matches():
    import itertools
    import random

    rng = random.Random(7)
    strings = {"".join(p) for n in range(3) for p in itertools.product(ALPHABET, repeat=n)}
    strings |= {"".join(rng.choice(ALPHABET) for _ in range(rng.randint(3, 10))) for _ in range(3000)}
    strings = sorted(strings)
    patterns = [*MASK_REGEX.values(), TOKEN_REGEX, HASH_REGEX, r"^[A-Z]{3}$", r"\s", r"\S", r"\d+", r"\w",
                r"^\W$", r"[\s\d]", r"^.$", r"a$", r"^$", r"a$|b", r"^(a|0)$", r"^a{,2}$", r"a{", r"\u00e9",
                r"[]a]", r"\.", r"\A0", r"0\Z", r"[\w-]"]  # fmt: skip
    con = duckdb.connect()
    con.execute("create table s (i integer, v varchar)")
    con.executemany("insert into s values (?, ?)", list(enumerate(strings)))
    for pattern in patterns:
        want = [i for i, s in enumerate(strings) if re.search(pattern, s)]
        got = [
            i
            for (i,) in con.execute(
                "select i from s where regexp_matches(v, ?) order by i", [to_re2(pattern)]
            ).fetchall()
        ]
        assert got == want, pattern
    # Untranslated, RE2 disagrees with Python on these (the reason for the translation).
    assert con.execute("select regexp_matches(?, ?)", ["USD\n", r"^[A-Z]{3}$"]).fetchall() == [(False,)]
    assert re.search(r"^[A-Z]{3}$", "USD\n")


@pytest.mark.parametrize(
    "pattern", [r"(?=a)", r"(?i)a", r"\bword", r"(a)\1", r"a$b", r"(a$)\n", r"a++", r"[[:alpha:]]", r"[\S]"]
)
def test_constructs_re2_reads_differently_are_refused(pattern):
    with pytest.raises(UnsupportedRegex):
        to_re2(pattern)
