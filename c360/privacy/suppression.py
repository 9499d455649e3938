"""The suppression list: pseudonyms of erased people, so that re-ingesting old files (or a full
refresh) never brings them back.

``privacy.suppressed_pseudonyms (kind, hash)`` holds keyed hashes only: of the record
identifiers stored in clear (``customer_ref``, ``order_id``, ``account_id``, ``device_id``...)
and of the contact pseudonyms (``email``, ``phone``, ``card``, ``loyalty``: hashed once more,
so the list never holds a value that appears in any other table). Ingestion drops a landing row
(or an unparseable line) that carries any of them before it is judged, and counts it as
quarantined with rule ``erased`` and no content.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from c360.contracts import Source
from c360.privacy import crypto
from c360.privacy.keys import Keyring

TABLE = "privacy.suppressed_pseudonyms"
DDL = f"create table if not exists {TABLE} (kind varchar, hash varchar, suppressed_at timestamp)"

# Clear-text identifier columns per source, and the identifier kind each one holds.
IDENTIFIERS: dict[str, dict[str, str]] = {
    "crm_customers": {"customer_ref": "customer_ref"},
    "ecommerce_orders": {"order_id": "order_id", "account_id": "account_id"},
    "ecommerce_order_items": {"order_id": "order_id"},
    "web_events": {"device_id": "device_id", "user_id": "account_id", "order_id": "order_id"},
    "pos_transactions": {"transaction_id": "transaction_id"},
    "service_tickets": {"ticket_id": "ticket_id"},
    "product_reviews": {"review_id": "review_id", "account_id": "account_id", "order_id": "order_id"},
    "marketing_consent": {"customer_ref": "customer_ref", "consent_event_id": "consent_event_id"},
}
# Contract column -> pseudonym kind, as ingestion computes the ``*_hash`` columns.
CONTACT_KINDS = {"email": "email", "phone": "phone", "loyalty_card": "loyalty", "bank_card": "card"}


def identifier_hash(kind: str, value: str | None, keyring: Keyring) -> str | None:
    """Keyed hash of a clear identifier (or of a contact pseudonym), domain-separated from the
    contact pseudonyms themselves: what the suppression list stores."""
    if value is None or value == "":
        return None
    return hmac.new(keyring.hmac_key, f"id:{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def identifier_hash_sql(kind: str, column: str, keyring: Keyring) -> str:
    """``identifier_hash`` in DuckDB SQL (embeds key-derived pads: run it, never log it)."""
    ipad, opad = crypto._hmac_pads(keyring.hmac_key)
    return (
        f"sha256(unhex('{opad.hex()}') || unhex(sha256(unhex('{ipad.hex()}') "
        f"|| encode('id:{kind}:' || cast(({column}) as varchar)))))"
    )


def _kinds_of(source: Source) -> list[tuple[str, str, str]]:
    """(column, kind, 'id' | 'contact') for every column of ``source`` the list can match."""
    out = [(col, kind, "id") for col, kind in IDENTIFIERS.get(source.name, {}).items()]
    out += [
        (c.name, CONTACT_KINDS[c.name], "contact")
        for c in source.columns
        if c.hashed and c.name in CONTACT_KINDS
    ]
    return out


def line_values(text: str | None) -> list[str]:
    """The values of an unparseable CSV line, as well as they can be told apart."""
    return [v.strip() for v in re.findall(r'[^,"\r\n]+', text or "") if v.strip()]


def has_suppressions(con) -> bool:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'privacy' "
        "and table_name = 'suppressed_pseudonyms'"
    ).fetchone()[0]
    return bool(exists) and bool(con.execute(f"select count(*) from {TABLE}").fetchone()[0])


def suppressed_rows_sql(source: Source, keyring: Keyring) -> str | None:
    """A SQL condition true for a parsed row of ``source`` that belongs to an erased person, or
    None when nothing of ``source`` can match the list (or the list is empty). The loader deletes
    such rows from its TEMP tables before anything is written."""
    kinds = _kinds_of(source)
    if not kinds:
        return None
    conditions = []
    for column, kind, family in kinds:
        value = (
            f'"{column}"'
            if family == "id"
            else crypto.hmac_sql(kind, keyring, crypto.normalise_sql(kind, f'"{column}"'))
        )
        expr = identifier_hash_sql(kind, value, keyring)
        conditions.append(f"({expr}) in (select hash from {TABLE} where kind = '{kind}')")
    return " or ".join(conditions)


def suppressed_line_matcher(con, source: Source, keyring: Keyring):
    """A test for unparseable lines of ``source``: true when any value on the line is an erased
    person's identifier or contact (lines have no columns, so every value is tried)."""
    kinds = _kinds_of(source)
    suppressed = {(k, h) for k, h in con.execute(f"select kind, hash from {TABLE}").fetchall()}

    def matches(text: str | None) -> bool:
        for value in line_values(text):
            candidates = [(k, identifier_hash(k, value, keyring)) for _, k, fam in kinds if fam == "id"]
            candidates += [
                (k, identifier_hash(k, crypto.pseudonym(value, keyring, k), keyring))
                for _, k, fam in kinds
                if fam == "contact"
            ]
            if any(c in suppressed for c in candidates):
                return True
        return False

    return matches
