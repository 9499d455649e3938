"""Scoring only what changed: which customers' scores a run must recompute.

Every score table keeps, on each row, ``input_hash``: a 64-bit hash of the exact inputs the row
was scored from (the customer's feature row, plus whatever else the scores depend on), and the
``model_version`` that scored it. A run hashes the current inputs and rescores a customer only
when their hash is new or different or the champion version changed; rows of customers no longer
in the inputs are dropped and the rest are kept as they are. Scoring is a pure function of those
inputs and the model, so the table after a run equals a from-scratch scoring, floats exactly
(tests/orchestration/test_incremental_scoring.py checks it).

Hashes are computed in pandas (``pd.util.hash_pandas_object``, over the values' bytes, so a float
that changes in its last bit changes the hash) rather than in SQL: the inputs come through
``WarehouseResource.reader()``, which may be Spark, while the score tables are DuckDB. Two
different rows share a hash with probability 2**-64; a column read with another dtype (an integer
column read as float once it holds a null) changes the hash and costs a rescore, never a stale
score.

Date-relative inputs: the churn features (days since the last purchase, the 30/90/365-day
windows) and the CLV summary (``t_days``) are measured from the as-of date, the day after the
last purchase in the data. When a day's data moves that date, every customer's inputs change and
everyone is rescored, as they must be for the scores to be right; the saving is on runs where the
as-of date stays (corrections, late records, reruns, intraday loads).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

HASH_COLUMN = (
    "input_hash",
    "ubigint",
    "Hash of the inputs the row was scored from: rescored only when it or the model version changes",
)
KEY = "customer_id"


def row_hashes(frame: pd.DataFrame, key: str = KEY) -> pd.Series:
    """A uint64 per row over every column but ``key`` (names included), indexed by ``key``."""
    import pandas as pd

    return pd.Series(_value_hashes(frame, key), index=frame[key].astype(str).to_numpy(), name="input_hash")


def _value_hashes(frame: pd.DataFrame, key: str = KEY) -> np.ndarray:
    """``row_hashes``' values, without its index. A categorical column hashes as its values do."""
    import pandas as pd

    values = frame.drop(columns=[key])
    hashes = pd.util.hash_pandas_object(values, index=False).to_numpy()
    names = np.uint64(pd.util.hash_array(np.array(["|".join(map(str, values.columns))], dtype=object))[0])
    return combine(hashes, names)


def combine(hashes: np.ndarray, other) -> np.ndarray:
    """Hash of each ``(hash, other)`` pair (``other`` a scalar or an array as long)."""
    import pandas as pd

    pairs = pd.DataFrame(
        {"h": hashes.astype(np.uint64), "o": np.broadcast_to(np.uint64(other), hashes.shape)}
    )
    return pd.util.hash_pandas_object(pairs, index=False).to_numpy()


def grouped_hashes(frame: pd.DataFrame, key: str = KEY) -> pd.Series:
    """One uint64 per ``key`` over all its rows, in the order given (sort the frame first): the
    wrapping sum of each row's hash combined with its position within the key. Vectorised (a
    Python call per customer costs seconds at 1M)."""
    import pandas as pd

    if frame.empty:
        return pd.Series([], dtype=np.uint64, name="input_hash")
    column = frame[key]
    # A categorical key is factorized through its codes (no string per row).
    codes, keys = pd.factorize(
        column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype(str), sort=False
    )
    position = frame.groupby(codes, sort=False).cumcount().to_numpy()
    per_row = combine(_value_hashes(frame, key), position)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sums = np.add.reduceat(per_row[order], starts)  # uint64: wraps around, as a hash sum should
    return pd.Series(sums, index=np.asarray(keys)[sorted_codes[starts]], name="input_hash")


def frame_hash(frame: pd.DataFrame) -> np.uint64:
    """One uint64 over a whole frame, rows in the given order, column names included."""
    import pandas as pd

    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    per_row = combine(rows, np.arange(len(rows), dtype=np.uint64))
    names = pd.util.hash_array(np.array(["|".join(map(str, frame.columns))], dtype=object))[0]
    return np.uint64(combine(np.array([np.add.reduce(per_row, dtype=np.uint64)]), names)[0])


def value_hash(value) -> np.uint64:
    """One uint64 for a shared input: a frame (``frame_hash``), a set (sorted) or a scalar/list."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return frame_hash(value)
    text = repr(sorted(map(str, value)) if isinstance(value, set | frozenset) else value)
    return np.uint64(pd.util.hash_array(np.array([text], dtype=object))[0])


def input_hashes(customers: pd.DataFrame, details: pd.DataFrame | None = None, shared=()) -> pd.Series:
    """Per customer: the hash of its row of ``customers``, its rows of ``details`` (in the order
    given: sort them first) and the ``shared`` inputs every customer's scores depend on (a change
    there rescores everyone)."""
    import pandas as pd

    hashes = row_hashes(customers)
    values = hashes.to_numpy()
    if details is not None:
        per_customer = grouped_hashes(details).reindex(hashes.index, fill_value=np.uint64(0))
        values = combine(values, per_customer.to_numpy(np.uint64))
    for part in shared:
        values = combine(values, value_hash(part))
    # The top bit set: every stored hash then has 19 digits starting with 9, or 20, so none is
    # ever an 18-character PRC id or a 13-19 digit card to the PII scanner (a plain random uint64
    # has 18 digits one time in 20, and some of those pass the id check by chance).
    values = values | np.uint64(1 << 63)
    return pd.Series(values, index=hashes.index, name="input_hash")


def with_part(hashes: pd.Series, part: pd.Series) -> pd.Series:
    """``hashes`` (``input_hashes``) combined with a per-customer ``part`` (uint64 indexed by
    customer id, missing = 0): an input only some customers' scores read, such as the rule list
    of their anchor product, so that a change to it rescores those customers, not everyone."""
    import pandas as pd

    values = combine(
        hashes.to_numpy(np.uint64), part.reindex(hashes.index, fill_value=np.uint64(0)).to_numpy(np.uint64)
    )
    return pd.Series(values | np.uint64(1 << 63), index=hashes.index, name="input_hash")


def keyed_hashes(frame: pd.DataFrame, key: str) -> pd.Series:
    """``grouped_hashes`` per value of ``key`` with the top bit set (see ``input_hashes``)."""
    import pandas as pd

    grouped = grouped_hashes(frame, key)
    return pd.Series(grouped.to_numpy(np.uint64) | np.uint64(1 << 63), index=grouped.index, name=key)


def table_columns(con, table: str) -> set[str]:
    schema, name = table.split(".", 1)
    return {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    }


@dataclass
class Plan:
    """What a run does: ``rescore`` the customers to score, ``previous`` the stored rows to keep,
    ``removed`` how many customers' rows go, ``why`` when everyone is rescored."""

    rescore: pd.Index
    previous: pd.DataFrame
    removed: int
    why: str | None

    def metadata(self, rows_kept: int | None = None) -> dict:
        kept = len(self.previous) if rows_kept is None else rows_kept
        return {
            "customers_rescored": len(self.rescore),
            "rows_kept": int(kept),
            "customers_removed": int(self.removed),
            "rescored_everyone_because": self.why or "",
        }


def plan(con, table: str, hashes: pd.Series, version, keep_rows: bool = True) -> Plan:
    """Compare ``hashes`` (current inputs, indexed by customer id) with ``table`` (DuckDB) for
    champion ``version``. ``previous`` holds the kept customers' stored rows, or only their ids
    without ``keep_rows`` (a table too big to hold, updated in place)."""
    import pandas as pd

    everyone = pd.Index(hashes.index)
    stored = table_columns(con, table)
    if not stored:
        return Plan(everyone, pd.DataFrame(), 0, "no scores yet")
    if HASH_COLUMN[0] not in stored:
        return Plan(everyone, pd.DataFrame(), 0, "scores written before input hashes")
    if version is None:
        return Plan(everyone, pd.DataFrame(), 0, "no champion model (fallback)")
    current = pd.DataFrame({KEY: everyone, "current_hash": hashes.to_numpy(np.uint64)})
    con.register("_current_hashes", current)
    try:
        kept = con.execute(
            f"select {'s.*' if keep_rows else f'distinct {KEY}'} from {table} s "
            f"join _current_hashes c using ({KEY}) "
            "where s.input_hash = c.current_hash and s.model_version = ?",
            [int(version)],
        ).df()
        kept_ids = kept[KEY].drop_duplicates()
        removed = con.execute(
            f"select count(distinct {KEY}) from {table} where {KEY} not in (select {KEY} from _current_hashes)"
        ).fetchone()[0]
        versions = con.execute(f"select distinct model_version from {table}").fetchall()
    finally:
        con.unregister("_current_hashes")
    rescore = everyone.difference(pd.Index(kept_ids.astype(str)), sort=False)
    why = None
    if len(rescore) == len(everyone) and len(everyone):
        why = (
            "champion version changed"
            if versions and (int(version),) not in versions
            else "every input changed"
        )
    return Plan(rescore, kept, int(removed), why)


def rows_metadata(plan: Plan, rescored_rows: int, kept_rows: int) -> dict:
    """Dagster metadata of a run: rows rescored vs kept."""
    return {"rows_rescored": int(rescored_rows), **plan.metadata(kept_rows)}


def merge_fresh(plan: Plan, fresh: pd.DataFrame, hashes: pd.Series, version, order) -> pd.DataFrame:
    """The score table after a run: ``fresh`` rows (just scored; stamped here with the champion
    ``version``, the time and their input hash) beside the kept ones, in the order of the ids in
    ``order`` (the inputs' order, as a from-scratch scoring writes them)."""
    import pandas as pd

    if len(fresh):
        fresh["model_version"] = version
        fresh["scored_at"] = datetime.now().replace(microsecond=0)
        fresh["input_hash"] = hashes.loc[fresh[KEY].astype(str)].to_numpy()
    scored = pd.concat([df for df in (plan.previous, fresh) if len(df)] or [fresh], ignore_index=True)
    at = pd.Index(scored[KEY].astype(str)).get_indexer(pd.Series(order).astype(str))
    return scored.iloc[at].reset_index(drop=True)
