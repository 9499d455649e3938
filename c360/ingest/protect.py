"""Protection of sensitive columns at ingestion, as SQL over the TEMP ``_batch`` table.

Every sensitive value is replaced before it reaches a warehouse table:
- ``<col>_hash``: HMAC-SHA-256 pseudonym of the normalised value (computed in DuckDB SQL), so
  identity resolution can still join on it;
- ``<col>_enc``: AES-256-GCM token bound to ``source|record key|column`` (computed in Python on
  Arrow batches), for the privileged decrypt path;
- ``<col>_masked``: what an analyst may see (``j***@example.com``, last four digits).
"""

from __future__ import annotations

import pyarrow as pa

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
    return crypto.hmac_sql(kind, keyring, crypto.normalise_sql(kind, f'"{name}"'))


def _masked_sql(name: str) -> str:
    return MASK_SQL.get(name, crypto.mask_card_sql)(f'"{name}"')


def add_protected_columns(con, source: Source, keyring: Keyring) -> None:
    """Add ``<col>_hash`` / ``<col>_enc`` / ``<col>_masked`` to ``_batch`` and a protected copy of
    rejected lines in ``_rejects_protected``."""
    protected = [c for c in source.columns if c.protect]
    exprs = []
    for col in protected:
        if col.hashed:
            exprs.append(f'{_hash_sql(col.name, keyring)} as "{col.name}_hash"')
        exprs.append(f'{_masked_sql(col.name)} as "{col.name}_masked"')
    if exprs:
        con.execute(f"create or replace temp table _protected as select _row, {', '.join(exprs)} from _batch")
    else:
        con.execute("create or replace temp table _protected as select _row from _batch")

    for col in (c for c in protected if c.encrypted):
        batch = con.sql(
            f'select _row, cast("{source.key}" as varchar) as k, cast("{col.name}" as varchar) as v '
            f'from _batch where "{col.name}" is not null'
        ).to_arrow_table()
        aads = [f"{source.name}|{k}|{col.name}" for k in batch.column("k").to_pylist()]
        tokens = crypto.encrypt_column(batch.column("v"), aads, keyring)
        enc = pa.table({"_row": batch.column("_row"), "token": tokens})
        con.register("_enc_view", enc)
        con.execute(f'alter table _protected add column "{col.name}_enc" varchar')
        con.execute(
            f'update _protected p set "{col.name}_enc" = e.token from _enc_view e where p._row = e._row'
        )
        con.unregister("_enc_view")

    # Malformed lines of a source with sensitive columns are kept encrypted, not in clear.
    lines = con.execute(
        "select line, any_value(csv_line) from _rejects group by line order by line"
    ).fetchall()
    if protected and lines:
        tokens = crypto.encrypt_column(
            pa.array([l for _, l in lines], pa.string()),
            [f"{source.name}|line:{n}" for n, _ in lines],
            keyring,
        )
        table = pa.table(
            {"line": [n for n, _ in lines], "raw": pa.array(["aesgcm:" + t for t in tokens.to_pylist()])}
        )
    else:
        table = pa.table(
            {
                "line": pa.array([n for n, _ in lines], pa.int64()),
                "raw": pa.array([l for _, l in lines], pa.string()),
            }
        )
    con.register("_rej_view", table)
    con.execute("create or replace temp table _rejects_protected as select * from _rej_view")
    con.unregister("_rej_view")


def raw_select_sql(source: Source) -> list[str]:
    """Select list from ``_batch`` (joined with ``_protected``) into ``raw.<source>``."""
    out = []
    for col in source.columns:
        if not col.protect:
            out.append(f'b."{col.name}"')
            continue
        if col.hashed:
            out.append(f'p."{col.name}_hash"')
        if col.encrypted:
            out.append(f'p."{col.name}_enc"')
        out.append(f'p."{col.name}_masked"')
    return out


def row_json_sql(source: Source) -> str:
    """A quarantined row as JSON, sensitive values masked (plus the pseudonym, to erase by)."""
    parts = []
    for col in source.columns:
        if col.protect:
            parts.append(f'"{col.name}" := p."{col.name}_masked"')
            if col.hashed:
                parts.append(f'"{col.name}_hash" := p."{col.name}_hash"')
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
