"""Protection of sensitive columns at ingestion, over the loader's TEMP ``_parsed`` table.

Every sensitive value is replaced before it reaches a warehouse table:
- ``<col>_hash``: HMAC-SHA-256 pseudonym of the normalised value (computed in DuckDB SQL), so
  identity resolution can still join on it;
- ``<col>_enc``: AES-256-GCM token bound to ``source|record key|column`` (computed in Python,
  one call per column per batch, on the rows that load only), for the privileged decrypt path;
- ``<col>_masked``: what an analyst may see (``j***@example.com``, last four digits).

The hash and mask expressions are written inline into the loader's inserts (over its TEMP
``_parsed b``), so no protected copy of the batch is ever made; only the tokens come back from
Python, as an Arrow table keyed by the row's rowid in ``_parsed``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from c360.contracts import Source
from c360.privacy import crypto
from c360.privacy.keys import Keyring

# The pseudonym "kind" mixed into each HMAC (domain separation), per contract column.
HASH_KIND = {
    "email": "email",
    "phone": "phone",
    "loyalty_card": "loyalty",
    "bank_card": "card",
    "national_id": "national_id",
}
MASK_SQL = {
    "email": crypto.mask_email_sql,
    "phone": crypto.mask_phone_sql,
    "national_id": crypto.mask_national_id_sql,
}


def _hash_sql(name: str, keyring: Keyring) -> str:
    kind = HASH_KIND[name]
    return crypto.hmac_sql(kind, keyring, crypto.normalise_sql(kind, f'b."{name}"'))


def _masked_sql(name: str) -> str:
    return MASK_SQL.get(name, crypto.mask_card_sql)(f'b."{name}"')


def encrypted_tokens(con, source: Source, keyring: Keyring, rows: str) -> pa.Table | None:
    """``_rid`` (the row's rowid in the loader's ``_parsed b``) and ``<col>_enc`` for every row of
    ``rows`` (the FROM clause of the rows that load), or None when the source encrypts nothing.
    Quarantined rows are never encrypted: their record keeps the mask and the pseudonym only."""
    columns = [c.name for c in source.columns if c.encrypted]
    if not columns:
        return None
    values = ", ".join(f'cast(b."{name}" as varchar) as "{name}"' for name in columns)
    batch = con.sql(
        f'select b.rowid as _rid, cast(b."{source.key}" as varchar) as _k, {values} from {rows}'
    ).to_arrow_table()
    out = {"_rid": batch.column("_rid")}
    for name in columns:
        aads = pc.binary_join_element_wise(f"{source.name}|", batch.column("_k"), f"|{name}", "")
        out[f"{name}_enc"] = crypto.encrypt_column(batch.column(name), aads, keyring)
    return pa.table(out)


def protected_rejects(con, source: Source, keyring: Keyring) -> pa.Table:
    """``_fidx``, ``line``, ``raw`` of the batch's unparseable lines (TEMP ``_rej``): encrypted
    when the source has sensitive columns, never kept in clear."""
    lines = con.execute(
        "select _fidx, line, any_value(csv_line) from _rej group by _fidx, line order by _fidx, line"
    ).fetchall()
    fidx = pa.array([f for f, _, _ in lines], pa.int64())
    numbers = pa.array([n for _, n, _ in lines], pa.int64())
    texts = pa.array([t for _, _, t in lines], pa.string())
    if any(c.protect for c in source.columns) and lines:
        tokens = crypto.encrypt_column(texts, [f"{source.name}|line:{n}" for _, n, _ in lines], keyring)
        texts = pc.binary_join_element_wise("aesgcm:", tokens, "")
    return pa.table({"_fidx": fidx, "line": numbers, "raw": texts})


def raw_select_sql(source: Source, keyring: Keyring, tokens: str | None = "e") -> list[str]:
    """Select list from ``_parsed b`` (joined with the tokens as ``tokens``) into
    ``raw.<source>``: sensitive values replaced by their protected forms."""
    out = []
    for col in source.columns:
        if not col.protect:
            out.append(f'b."{col.name}"')
            continue
        if col.hashed:
            out.append(f'{_hash_sql(col.name, keyring)} as "{col.name}_hash"')
        if col.encrypted:
            out.append(f'{tokens}."{col.name}_enc"')
        out.append(f'{_masked_sql(col.name)} as "{col.name}_masked"')
    return out


def row_json_sql(source: Source, keyring: Keyring) -> str:
    """A quarantined row of ``_parsed b`` as JSON, sensitive values masked (plus the pseudonym,
    to erase by)."""
    parts = []
    for col in source.columns:
        if col.protect:
            parts.append(f'"{col.name}" := {_masked_sql(col.name)}')
            if col.hashed:
                parts.append(f'"{col.name}_hash" := {_hash_sql(col.name, keyring)}')
        else:
            parts.append(f'"{col.name}" := b."{col.name}"')
    return f"to_json(struct_pack({', '.join(parts)}))"


def raw_row_json_sql(source: Source) -> str:
    """A row of ``raw.<source>`` as JSON (its columns are already protected)."""
    parts = []
    for col in source.columns:
        if col.protect:
            parts.append(f'"{col.name}" := "{col.name}_masked"')
            if col.hashed:
                parts.append(f'"{col.name}_hash" := "{col.name}_hash"')
        else:
            parts.append(f'"{col.name}" := "{col.name}"')
    return f"to_json(struct_pack({', '.join(parts)}))"
