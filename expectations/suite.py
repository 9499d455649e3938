"""What a data-quality suite is, and the expectation builders the per-table suites share.

A suite has three parts, each judged by Great Expectations from counts DuckDB computes in one
pass (``expectations/sql_metrics.py``):

- ``row_expectations``: column-map expectations (not null, between, in set, regex) judged on
  every row of the table, or on the rows loaded since the gate last passed;
- ``facts``: table-level numbers computed in DuckDB SQL (row counts, duplicate keys, orphans,
  freshness, column types) and checked as one row; keys and references also have an
  ``increment_facts`` form that judges only the rows loaded since the gate last passed (the
  identity map: the records written since, by ``window_table`` and ``window_column``);
- ``drift``: daily totals computed in SQL; the latest days must lie within bounds learned from
  the trailing history.

Only pseudonyms, tokens and masks reach raw tables, and row expectations run with a result
format that asks for no unexpected values (DuckDB never fetches one), so no result or Data Docs
page can hold personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from c360.contracts import SOURCES, Source

HASH_REGEX = r"^[0-9a-f]{64}$"
TOKEN_REGEX = r"^v[0-9]+:[A-Za-z0-9_\-]+:[A-Za-z0-9_\-]+$"  # AES-GCM token: version:key id:payload
MASK_REGEX = {
    "email": r"^[^@\s*]\*\*\*@[^@\s]+\.[A-Za-z]{2,}$",
    "phone": r"^\*{7}[0-9]{4}$",
    "national_id": r"^\*{14}[0-9A-Z]{4}$",
    "card": r"^\*{4} \*{4} \*{4} [0-9]{4}$",
}
# Accepted values not spelled out in the contract's column types. Product categories are not a
# closed list: a catalogue grows new ones (Olist's has 70), so a new category must not stop the run.
ACCEPTED = {
    ("crm_customers", "gender"): ["F", "M", "U"],
    ("crm_customers", "signup_channel"): ["web", "app", "store"],
    ("ecommerce_orders", "channel"): ["web", "app"],
    ("ecommerce_orders", "status"): ["placed", "paid", "shipped", "delivered", "cancelled", "returned"],
    ("ecommerce_orders", "payment_method"): ["card", "alipay", "wechat_pay", "cod"],
    ("web_events", "event_type"): [
        "page_view",
        "search",
        "product_view",
        "add_to_cart",
        "checkout",
        "purchase",
    ],
    ("web_events", "channel"): ["web", "app"],
    ("pos_transactions", "payment_method"): ["cash", "card", "alipay", "wechat_pay"],
    ("service_tickets", "channel"): ["phone", "email", "chat"],
    ("service_tickets", "category"): ["delivery", "refund", "product", "complaint", "account"],
    ("service_tickets", "resolution"): ["resolved", "pending", "escalated", "refunded"],
    ("marketing_consent", "channel"): ["email", "sms", "push", "phone"],
    ("marketing_consent", "source"): ["web", "app", "store", "call_center"],
}
# Stands for the rows an increment fact judges (``QualitySuite.increment_facts``).
NEW_ROWS = "{rows}"
# Largest share of a source's landing rows that may be quarantined before the load is suspect.
# Tiny test runs plant a floor of defects per kind, hence the generous default.
MAX_QUARANTINE_SHARE = 0.2


@dataclass(frozen=True)
class Drift:
    """Daily ``value`` (SQL over the table, summed per day of ``time_column``) of the latest
    ``check_days`` must lie within mean ± k·sd of ln(1 + total) over the ``history_days`` before.

    Log scale because daily totals are skewed (festival spikes) and a drop to zero must fail too.
    Skipped while the history is shorter than ``min_history_days`` or averages fewer than
    ``min_rows_per_day`` rows: a few dozen rows a day are too noisy to judge (a quiet day at
    zero would look like an outage).
    """

    time_column: str
    value: str = "1"
    label: str = "rows"
    k: float = 4.0
    check_days: int = 7
    history_days: int = 56
    min_history_days: int = 28
    min_rows_per_day: float = 30.0


@dataclass
class QualitySuite:
    name: str
    table: str
    row_expectations: Callable[[datetime], list] = lambda now: []
    facts: dict[str, str] = field(default_factory=dict)  # fact name -> scalar SQL
    fact_expectations: list = field(default_factory=list)
    # Relations the facts read by name, each computed once per validation (materialised CTEs):
    # several facts counted from one join instead of a scan of the table each.
    shared: dict[str, str] = field(default_factory=dict)
    # The same facts judged on an increment: scalar SQL in which ``{rows}`` stands for the rows
    # loaded since the gate last passed (a parenthesised subquery). Used instead of ``facts[name]``
    # once a gate has passed; exact because raw tables only grow (an erasure removes a person's
    # rows from every source at once), so rows that passed cannot start failing these facts.
    increment_facts: dict[str, str] = field(default_factory=dict)
    # Relations the increment facts read by name, as ``shared`` (``{rows}`` allowed).
    increment_shared: dict[str, str] = field(default_factory=dict)
    # Where an incremental gate finds "the rows since it last passed": by default the table's own
    # load time. A view can name the table it reads and that table's write time instead
    # (marts.identity_map: the identity records and the time their component was resolved).
    window_table: str | None = None
    window_column: str = "_loaded_at"
    drift: Drift | None = None
    # Sensitive-class columns (pseudonyms, tokens, masks): never echoed anywhere.
    pii_columns: tuple[str, ...] = ()
    # Scalar SQL, true when the table has no data to judge yet (a source nobody has sent): the
    # gate then passes with a "no data" note instead of failing on its row count.
    no_data: str | None = None

    def columns_for_rows(self, now: datetime) -> list[str]:
        cols: list[str] = []
        for exp in self.row_expectations(now):
            if exp.column not in cols:
                cols.append(exp.column)
        return cols


# --- builders -------------------------------------------------------------------------------


class _Expectations:
    """``great_expectations.expectations``, imported on first use: importing Great Expectations
    takes ~6 s, which every ``c360`` command and the Dagster code server paid at start."""

    def __getattr__(self, name: str):
        import great_expectations.expectations

        return getattr(great_expectations.expectations, name)


E = _Expectations()


def not_null(*columns: str) -> list:
    return [E.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def required_not_null(source: Source) -> list:
    return not_null(*(c.name for c in source.columns if c.required))


def protected_formats(source: Source) -> list:
    """Pseudonyms are 64 hex digits, tokens look like tokens, masks have the mask's shape."""
    out = []
    for col in source.columns:
        if not col.protect:
            continue
        if col.hashed:
            out.append(E.ExpectColumnValuesToMatchRegex(column=f"{col.name}_hash", regex=HASH_REGEX))
        if col.encrypted:
            out.append(E.ExpectColumnValuesToMatchRegex(column=f"{col.name}_enc", regex=TOKEN_REGEX))
        mask = MASK_REGEX.get(col.name, MASK_REGEX["card"])
        out.append(E.ExpectColumnValuesToMatchRegex(column=f"{col.name}_masked", regex=mask))
        if col.required:
            out.append(E.ExpectColumnValuesToNotBeNull(column=f"{col.name}_masked"))
    return out


def protected_columns(source: Source) -> tuple[str, ...]:
    out = []
    for col in source.columns:
        if col.protect:
            out += (
                [f"{col.name}_hash"] * col.hashed
                + [f"{col.name}_enc"] * col.encrypted
                + [f"{col.name}_masked"]
            )
    return tuple(out)


def accepted_values(source: Source) -> list:
    return [
        E.ExpectColumnValuesToBeInSet(column=col, value_set=values)
        for (name, col), values in ACCEPTED.items()
        if name == source.name
    ]


def at_least(column: str, minimum: float, maximum: float | None = None) -> object:
    return E.ExpectColumnValuesToBeBetween(column=column, min_value=minimum, max_value=maximum)


def not_in_future(source: Source, now: datetime) -> list:
    return [E.ExpectColumnValuesToBeBetween(column=c, max_value=now) for c in source.event_time]


def equals_zero(*facts: str) -> list:
    return [E.ExpectColumnValuesToBeBetween(column=f, min_value=0, max_value=0) for f in facts]


def raw_facts(source: Source, max_lag_days: int = 30, max_quarantine_share: float = MAX_QUARANTINE_SHARE):
    """Facts and their expectations every raw table shares: types, row count, quarantine share,
    key uniqueness and freshness. A source no landing row has reached yet (no files, or only
    empty, header-only or rejected ones) has null facts (GX counts nulls as missing, not as
    failures): a missing source is simply empty. Once rows have landed, an empty table fails."""
    from c360.ingest.loader import raw_columns

    table = f"raw.{source.name}"
    facts = {
        f"type:{name}": (
            "select coalesce(any_value(data_type), 'MISSING') from information_schema.columns "
            f"where table_schema = 'raw' and table_name = '{source.name}' and column_name = '{name}'"
        )
        for name, _ in raw_columns(source)
    }
    expectations = [
        E.ExpectColumnValuesToBeInSet(column=f"type:{name}", value_set=[typ])
        for name, typ in raw_columns(source)
    ]
    facts["row_count"] = f"select case when not ({no_data_sql(source)}) then count(*) end from {table}"
    facts["quarantine_share"] = (
        "select sum(rows_quarantined) / nullif(sum(rows_in), 0) from raw._load_log "
        f"where source = '{source.name}'"
    )
    facts["duplicate_keys"] = f'select count(*) - count(distinct "{source.key}") from {table}'
    expectations += [
        at_least("row_count", 1),
        E.ExpectColumnValuesToBeBetween(
            column="quarantine_share", min_value=0, max_value=max_quarantine_share
        ),
        *equals_zero("duplicate_keys"),
    ]
    if source.event_time:
        # Freshness against the freshest source, not the wall clock: a feed that stopped while
        # the others kept coming is stale, and replayed or demo data does not trip it.
        latest = " union all ".join(
            f"select max({s.event_time[0]}) from raw.{s.name}" for s in SOURCES.values() if s.event_time
        )
        facts["freshness_lag_days"] = (
            f"select date_diff('day', max({source.event_time[0]}), (select max(t) from ({latest}) x(t))) "
            f"from {table}"
        )
        expectations.append(
            E.ExpectColumnValuesToBeBetween(column="freshness_lag_days", min_value=0, max_value=max_lag_days)
        )
    return facts, expectations


def raw_increment_facts(source: Source) -> dict[str, str]:
    """Key uniqueness on an increment: the new rows and every row sharing a key with one of them
    (a probe of the key column, where the whole-table form counts every distinct key)."""
    key = f'"{source.key}"'
    return {
        "duplicate_keys": f"select count(*) - count(distinct {key}) from raw.{source.name} "
        f"where {key} in (select {key} from {NEW_ROWS} n)"
    }


def no_data_sql(source: Source) -> str:
    """True while no landing row of the source has arrived and its raw table is empty."""
    landed = f"select coalesce(sum(rows_in), 0) from raw._load_log where source = '{source.name}'"
    return f"({landed}) = 0 and not exists (select 1 from raw.{source.name})"


def orphans(child: str, column: str, parent: str, parent_column: str) -> str:
    """Rows of ``child`` whose non-null ``column`` has no match in ``parent``."""
    return (
        f'select count(*) from {child} c where c."{column}" is not null and not exists '
        f'(select 1 from {parent} p where p."{parent_column}" = c."{column}")'
    )


def raw_suite(
    source_name: str,
    extra_rows: Callable[[datetime], list] = lambda now: [],
    facts: dict[str, str] | None = None,
    fact_expectations: list | None = None,
    increment_facts: dict[str, str] | None = None,
    references: dict[str, tuple[str, str, str]] | None = None,
    drift: Drift | None = None,
    max_lag_days: int = 30,
) -> QualitySuite:
    """The suite of ``raw.<source>``: the shared checks plus the source's own.

    ``references``: fact name -> (column, parent table, parent column); each must have no
    orphans, judged on the whole table the first time and on the new rows after that."""
    source = SOURCES[source_name]
    table = f"raw.{source_name}"
    shared_facts, shared_expectations = raw_facts(source, max_lag_days=max_lag_days)
    facts = dict(facts or {})
    fact_expectations = list(fact_expectations or [])
    increment_facts = raw_increment_facts(source) | (increment_facts or {})
    for name, (column, parent, parent_column) in (references or {}).items():
        facts[name] = orphans(table, column, parent, parent_column)
        increment_facts[name] = orphans(NEW_ROWS, column, parent, parent_column)
        fact_expectations += equals_zero(name)

    def rows(now: datetime) -> list:
        return (
            required_not_null(source)
            + protected_formats(source)
            + accepted_values(source)
            + not_in_future(source, now)
            + extra_rows(now)
        )

    return QualitySuite(
        name=table,
        table=table,
        row_expectations=rows,
        facts=shared_facts | facts,
        fact_expectations=shared_expectations + fact_expectations,
        increment_facts=increment_facts,
        drift=drift,
        pii_columns=protected_columns(source),
        no_data=f"select {no_data_sql(source)}",
    )
