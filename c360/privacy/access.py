"""Role-based access to sensitive values, and the audit of every attempt.

Analysts read the masked views in schema ``analytics`` and never decrypt. A few roles may
decrypt a few fields of one person at a time through ``reveal`` (``c360 reveal``), which
checks the role, decrypts with the keyring and writes one row to ``privacy.access_audit`` for
every attempt, whatever its outcome (revealed, denied, not_found, error). The role model is
this module's ``ROLES`` constant, documented in docs/PRIVACY.md.
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from datetime import datetime

import duckdb

from c360.contracts import SOURCES
from c360.privacy import crypto
from c360.privacy.keys import Keyring

# Fields a privileged role can reveal: the encrypted columns of the landing contract.
REVEALABLE_FIELDS = ("national_id", "bank_card", "email", "phone")


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    reveal: tuple[str, ...] = ()  # fields this role may decrypt


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("analyst", "Reads the masked views in schema analytics; decrypts nothing."),
        Role("support_agent", "Contacts a customer: may decrypt email and phone.", ("email", "phone")),
        Role(
            "privacy_officer",
            "Answers access and erasure requests: may decrypt every field.",
            REVEALABLE_FIELDS,
        ),
    )
}

AUDIT_DDL = """
create table if not exists privacy.access_audit (
    audit_id varchar, occurred_at timestamp, actor varchar, role varchar, customer_id varchar,
    field varchar, reason varchar, outcome varchar, records integer, detail varchar
)"""


class AccessDenied(PermissionError):
    """The role may not decrypt that field (the attempt is audited)."""


@dataclass
class Revealed:
    customer_id: str
    field: str
    values: list[tuple[str, str]]  # (record reference "source:key", plaintext)
    audit_id: str


def can_reveal(role: str, field: str) -> bool:
    return role in ROLES and field in ROLES[role].reveal


def _encrypted_sources(field: str) -> list[str]:
    """Sources whose ``<field>_enc`` column exists and whose key is the identity record id."""
    return [s.name for s in SOURCES.values() if any(c.name == field and c.encrypted for c in s.columns)]


def _audit(con, *, actor, role, customer_id, field, reason, outcome, records=0, detail=None) -> str:
    con.execute("create schema if not exists privacy")
    con.execute(AUDIT_DDL)
    audit_id = uuid.uuid4().hex
    con.execute(
        "insert into privacy.access_audit values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            audit_id,
            datetime.now().replace(microsecond=0),
            actor,
            role,
            customer_id,
            field,
            reason,
            outcome,
            records,
            detail,
        ],
    )
    return audit_id


def reveal(
    con: duckdb.DuckDBPyConnection,
    customer_id: str,
    field: str,
    *,
    role: str,
    reason: str,
    keyring: Keyring | None,
    actor: str | None = None,
) -> Revealed:
    """Decrypt ``field`` of every record of ``customer_id``; audited whatever happens.

    Raises ``AccessDenied`` when the role may not see the field, ``LookupError`` when the
    person has no such value, and the decryption error when a token does not open.
    """
    actor = actor or getpass.getuser()
    audit = {"actor": actor, "role": role, "customer_id": customer_id, "field": field, "reason": reason}
    if not reason or not reason.strip():
        _audit(con, **audit, outcome="denied", detail="no reason given")
        raise AccessDenied("a reason is required to decrypt personal data")
    if role not in ROLES:
        _audit(con, **audit, outcome="denied", detail="unknown role")
        raise AccessDenied(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not can_reveal(role, field):
        _audit(con, **audit, outcome="denied", detail=f"role {role} may not decrypt {field}")
        raise AccessDenied(
            f"role {role!r} may not decrypt {field!r} (it may decrypt: {', '.join(ROLES[role].reveal) or 'nothing'})"
        )
    try:
        if keyring is None:
            raise RuntimeError("no keyring: decryption needs the encryption keys")
        values: list[tuple[str, str]] = []
        for source in _encrypted_sources(field):
            key = SOURCES[source].key
            rows = con.execute(
                f'select r."{key}", r."{field}_enc" from raw.{source} r '
                f'join marts.identity_map m on m.source = ? and m.source_record_id = r."{key}" '
                f'where m.customer_id = ? and r."{field}_enc" is not null order by r."{key}"',
                [source, customer_id],
            ).fetchall()
            for record, token in rows:
                values.append(
                    (f"{source}:{record}", crypto.decrypt(token, f"{source}|{record}|{field}", keyring))
                )
    except Exception as exc:
        _audit(con, **audit, outcome="error", detail=type(exc).__name__)
        raise
    if not values:
        _audit(con, **audit, outcome="not_found")
        raise LookupError(f"customer {customer_id} has no {field} on record")
    audit_id = _audit(con, **audit, outcome="revealed", records=len(values))
    return Revealed(customer_id, field, values, audit_id)
