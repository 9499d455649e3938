"""The right to be forgotten: remove a person from every table, keep no personal trace.

``erase`` finds the person's records through ``marts.identity_map`` (source, record id) and
their raw rows (CRM by customer_ref, orders by order_id and their lines, clickstream by
device, receipts by transaction, tickets, reviews, consent events), then closes over the
identifiers and pseudonyms those rows carry. It then, in one transaction:

* deletes the raw rows and moves them, per file, from "loaded" to "quarantined" with rule
  ``erased`` and no content, so every file's conservation equation still holds;
* blanks the person's quarantine rows (matched by record id, by the identifiers and pseudonyms
  in their JSON, and, for unparseable lines, by decrypting them) to rule ``erased``;
* deletes every row of every derived table (intermediate, marts, features, ml, activation...)
  holding any of those identifiers, in a column or a list;
* pseudonymises the person's rows in ``privacy.access_audit``;
* adds the identifiers' keyed hashes to ``privacy.suppressed_pseudonyms`` so ingestion drops
  the person's rows if old files are loaded again;
* writes ``privacy.erasure_log`` (request id, time, a keyed hash of the customer id, row
  counts per table): no personal data.

DuckDB keeps deleted values in free blocks of the file until they are overwritten, so the
warehouse is then rewritten into a fresh file (``COPY FROM DATABASE``) and swapped in:
afterwards no byte of the file holds the person's identifiers.

MLflow models trained before the erasure were fitted on the person's rows (none stores a
customer id: the recommender reads histories from the warehouse when it serves): retrain them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
from cryptography.exceptions import InvalidTag

from c360.compaction import CompactionError, compact
from c360.contracts import SOURCES
from c360.privacy import crypto, suppression
from c360.privacy.keys import Keyring, MissingKeyError

ERASURE_LOG_DDL = """
create table if not exists privacy.erasure_log (
    request_id varchar, subject_hash varchar, requested_at timestamp, completed_at timestamp,
    rows_by_table varchar, compacted boolean
)"""
# Schemas whose tables are the platform's own bookkeeping, handled explicitly.
_BOOKKEEPING = ("raw", "quality", "privacy", "information_schema", "pg_catalog")
RETRAIN_NOTICE = (
    "Models trained before this erasure were fitted on the person's rows (none stores their "
    "customer id): retrain them with `c360 run`."
)


@dataclass
class Subject:
    customer_id: str
    # identifier kind -> clear values (customer_ref, order_id, account_id, device_id...)
    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # pseudonym kind -> HMAC values (email, phone, card, loyalty)
    hashes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # source -> raw keys of the person's rows
    raw_keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    records: set[tuple[str, str]] = field(default_factory=set)  # identity_map (source, id)

    def match_values(self) -> set[str]:
        """Every value a derived table may hold for this person (plain, prefixed, record nodes)."""
        values = {self.customer_id}
        for source, record in self.records:
            values |= {record, f"{source}:{record}"}
        for source, keys in self.raw_keys.items():
            values |= keys | {f"{source}:{k}" for k in keys}
        prefixes = {
            "customer_ref": ("crm",),
            "account_id": ("account",),
            "order_id": ("order",),
            "transaction_id": ("pos",),
        }
        for kind, vals in self.ids.items():
            for prefix in (kind, *prefixes.get(kind, ())):
                values |= vals | {f"{prefix}:{v}" for v in vals}
        for kind, vals in self.hashes.items():
            values |= vals | {f"{kind}:{v}" for v in vals}
        return {v for v in values if v}


def _subject_hash(customer_id: str, keyring: Keyring) -> str:
    return suppression.identifier_hash("erasure_subject", customer_id, keyring)


def _table_exists(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def _collect_raw(con, subject: Subject) -> None:
    """Close over the person's raw rows: a row is theirs when it carries one of their
    identifiers or pseudonyms; every row found adds its own (two rounds reach a fixpoint for
    the contract's sources: record -> account/order -> lines and events)."""
    for _ in range(3):
        before = (sum(len(v) for v in subject.ids.values()), sum(len(v) for v in subject.hashes.values()))
        for name, source in SOURCES.items():
            if name not in suppression.IDENTIFIERS or not _table_exists(con, "raw", name):
                continue
            conditions, params = [], []
            record_ids = [r for s, r in subject.records if s == name]
            identity_col = {"web_events": "device_id", "pos_transactions": "transaction_id"}.get(
                name, source.key
            )
            if record_ids:
                conditions.append(f'"{identity_col}" in (select unnest(?))')
                params.append(record_ids)
            for column, kind in suppression.IDENTIFIERS[name].items():
                if subject.ids.get(kind):
                    conditions.append(f'"{column}" in (select unnest(?))')
                    params.append(sorted(subject.ids[kind]))
            for column, kind in suppression.CONTACT_KINDS.items():
                if (
                    column in source.column_names
                    and source.column(column).hashed
                    and subject.hashes.get(kind)
                ):
                    conditions.append(f'"{column}_hash" in (select unnest(?))')
                    params.append(sorted(subject.hashes[kind]))
            if not conditions:
                continue
            id_cols = list(suppression.IDENTIFIERS[name].items())
            hash_cols = [
                (c, k)
                for c, k in suppression.CONTACT_KINDS.items()
                if c in source.column_names and source.column(c).hashed
            ]
            select = (
                [f'"{source.key}"'] + [f'"{c}"' for c, _ in id_cols] + [f'"{c}_hash"' for c, _ in hash_cols]
            )
            rows = con.execute(
                f"select {', '.join(select)} from raw.{name} where {' or '.join(conditions)}", params
            ).fetchall()
            for row in rows:
                subject.raw_keys[name].add(str(row[0]))
                for (_, kind), value in zip(id_cols, row[1 : 1 + len(id_cols)], strict=True):
                    if value is not None:
                        subject.ids[kind].add(str(value))
                for (_, kind), value in zip(hash_cols, row[1 + len(id_cols) :], strict=True):
                    if value is not None:
                        subject.hashes[kind].add(value)
        after = (sum(len(v) for v in subject.ids.values()), sum(len(v) for v in subject.hashes.values()))
        if after == before:
            break


def find_subject(con, customer_id: str) -> Subject:
    subject = Subject(customer_id)
    if _table_exists(con, "marts", "identity_map"):
        subject.records = {
            (s, r)
            for s, r in con.execute(
                "select source, source_record_id from marts.identity_map where customer_id = ?", [customer_id]
            ).fetchall()
        }
    _collect_raw(con, subject)
    return subject


def _quarantine_hits(con, subjects: list[Subject], keyring: Keyring) -> list[int]:
    """rowids of quarantine rows belonging to the subjects."""
    values = set().union(*(s.match_values() for s in subjects))
    keyed = {(src, k) for s in subjects for src, keys in s.raw_keys.items() for k in keys}
    ids = {(k, v) for s in subjects for k, vals in s.ids.items() for v in vals}
    hashes = {(k, h) for s in subjects for k, hs in s.hashes.items() for h in hs}
    con.execute(
        "create or replace temp table _erase_values as select unnest(?::varchar[]) as v", [sorted(values)]
    )
    hits = {
        r[0]
        for r in con.execute(
            "select q.rowid from quality.quarantine q where q.raw is not null and not starts_with(q.raw, 'aesgcm:') "
            "and exists (select 1 from _erase_values e where contains(q.raw, '\"' || e.v || '\"'))"
        ).fetchall()
    }
    candidates = con.execute(
        "select rowid, source, record_id, raw from quality.quarantine where record_id is not null"
    ).fetchall()
    for rowid, source, record_id, raw in candidates:
        if (source, record_id) in keyed:
            hits.add(rowid)
            continue
        if raw is None or not record_id.startswith("line:"):
            continue
        line = raw
        if raw.startswith("aesgcm:"):
            try:
                line = crypto.decrypt(raw.removeprefix("aesgcm:"), f"{source}|{record_id}", keyring)
            except (InvalidTag, MissingKeyError, ValueError):  # under a retired key: nothing to match
                continue
        for value in suppression.line_values(line):
            if any((k, value) in ids for k in {k for k, _ in ids}) or any(
                (k, crypto.pseudonym(value, keyring, k)) in hashes for k in {k for k, _ in hashes}
            ):
                hits.add(rowid)
                break
    return sorted(hits)


def _derived_tables(con) -> list[tuple[str, str, list[tuple[str, str]]]]:
    rows = con.execute(
        "select c.table_schema, c.table_name, c.column_name, c.data_type from information_schema.columns c "
        "join information_schema.tables t using (table_catalog, table_schema, table_name) "
        "where t.table_type = 'BASE TABLE' and c.table_catalog = current_database() "
        "and c.table_schema not in (select unnest(?)) order by 1, 2, c.ordinal_position",
        [list(_BOOKKEEPING)],
    ).fetchall()
    tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in rows:
        if data_type == "VARCHAR" or data_type == "VARCHAR[]":
            tables.setdefault((schema, table), []).append((column, data_type))
    return [(s, t, cols) for (s, t), cols in tables.items()]


@dataclass
class ErasureResult:
    request_id: str
    customers: int
    rows_by_table: dict[str, int]
    seconds: float = 0.0
    compacted: bool = False


def erase(
    con: duckdb.DuckDBPyConnection,
    customer_ids: list[str],
    keyring: Keyring,
    request_id: str | None = None,
) -> ErasureResult:
    """Erase the people in one transaction (the file's rewrite is separate: c360/compaction.py)."""
    started = time.perf_counter()
    request_id = request_id or uuid.uuid4().hex
    now = datetime.now().replace(microsecond=0)
    run_id = f"erasure:{request_id}"
    con.execute("create schema if not exists privacy")
    con.execute(suppression.DDL)
    con.execute(ERASURE_LOG_DDL)
    subjects = [find_subject(con, cid) for cid in customer_ids]
    counts: dict[str, int] = defaultdict(int)

    con.execute("begin transaction")
    try:
        for name in SOURCES:
            keys = sorted(set().union(*(s.raw_keys.get(name, set()) for s in subjects)))
            if not keys:
                continue
            key = SOURCES[name].key
            where = f'"{key}" in (select unnest(?))'
            per_file = con.execute(
                f"select _source_file, count(*) from raw.{name} where {where} group by 1", [keys]
            ).fetchall()
            for source_file, n in per_file:
                con.execute(
                    "update raw._load_log set rows_loaded = rows_loaded - ?, rows_quarantined = rows_quarantined + ? "
                    "where source = ? and file = ?",
                    [n, n, name, source_file],
                )
                con.execute(
                    "insert into quality.quarantine select ?, ?, null, 'erased', null, ?, ? from range(?)",
                    [name, source_file, run_id, now, n],
                )
            counts[f"raw.{name}"] = con.execute(f"delete from raw.{name} where {where}", [keys]).fetchone()[0]

        if _table_exists(con, "quality", "quarantine"):
            hits = _quarantine_hits(con, subjects, keyring)
            if hits:
                con.execute(
                    "update quality.quarantine set record_id = null, raw = null, rule = 'erased', run_id = ? "
                    "where rowid in (select unnest(?))",
                    [run_id, hits],
                )
                counts["quality.quarantine"] = len(hits)

        values = sorted(set().union(*(s.match_values() for s in subjects)))
        con.execute(
            "create or replace temp table _erase_values as select unnest(?::varchar[]) as v", [values]
        )
        for schema, table, columns in _derived_tables(con):
            conditions = [
                f'"{c}" in (select v from _erase_values)'
                if t == "VARCHAR"
                else f'len(list_intersect("{c}", (select list(v) from _erase_values))) > 0'
                for c, t in columns
            ]
            n = con.execute(f'delete from "{schema}"."{table}" where {" or ".join(conditions)}').fetchone()[0]
            if n:
                counts[f"{schema}.{table}"] = n

        if _table_exists(con, "privacy", "access_audit"):
            for s in subjects:
                n = con.execute(
                    "update privacy.access_audit set customer_id = ? where customer_id = ?",
                    [f"erased:{_subject_hash(s.customer_id, keyring)[:16]}", s.customer_id],
                ).fetchone()[0]
                if n:
                    counts["privacy.access_audit"] += n

        pseudonyms = {
            (k, suppression.identifier_hash(k, v, keyring))
            for s in subjects
            for values_by_kind in (s.ids, s.hashes)
            for k, vs in values_by_kind.items()
            for v in vs
        }
        con.execute(
            f"insert into {suppression.TABLE} select k, h, ? from (select unnest(?::varchar[]) as k, "
            f"unnest(?::varchar[]) as h) where (k, h) not in (select (kind, hash) from {suppression.TABLE})",
            [now, [k for k, _ in sorted(pseudonyms)], [h for _, h in sorted(pseudonyms)]],
        )
        for s in subjects:
            con.execute(
                "insert into privacy.erasure_log values (?, ?, ?, ?, ?, false)",
                [
                    request_id,
                    _subject_hash(s.customer_id, keyring),
                    now,
                    datetime.now().replace(microsecond=0),
                    json.dumps(dict(sorted(counts.items()))),
                ],
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.execute("drop table if exists _erase_values")
    return ErasureResult(
        request_id, len(subjects), dict(sorted(counts.items())), time.perf_counter() - started
    )


class IncompleteErasure(RuntimeError):
    """The people were erased from every table, but the file could not be rewritten: their values
    remain in its free blocks until a compaction (``c360 compact``) completes the erasure."""

    def __init__(self, result: ErasureResult, reason: str) -> None:
        self.result = result
        super().__init__(
            f"Erasure {result.request_id}: {result.customers} person(s) removed from every table "
            f"({sum(result.rows_by_table.values())} rows), but the warehouse file was not rewritten, "
            f"so their values remain in its free blocks: {reason}. Run `c360 compact` when the file is "
            "free: it completes the erasure (privacy.erasure_log.compacted)."
        )


def erase_and_compact(customer_ids: list[str], request_id: str | None = None) -> ErasureResult:
    from c360.settings import get_settings
    from c360.warehouse import connect

    settings = get_settings()
    keyring = Keyring.load(settings)
    con = connect(settings.warehouse)
    try:
        result = erase(con, customer_ids, keyring, request_id)
    finally:
        con.close()
    started = time.perf_counter()
    try:
        # The rewrite marks this erasure (and any earlier one left pending) compacted in the log.
        compact(settings.warehouse, settings)
    except CompactionError as exc:
        raise IncompleteErasure(result, str(exc)) from exc
    result.compacted = True
    result.seconds += time.perf_counter() - started
    return result
