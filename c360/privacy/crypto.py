"""Field-level protection of sensitive columns: encryption, pseudonyms, masks, validators.

* Encryption: AES-256-GCM, one fresh 96-bit nonce per value, the record identity as AAD,
  text tokens ``v1:<keyid>:<base64url(nonce || ciphertext || tag)>``.
* Pseudonyms: HMAC-SHA-256 (hex) of the normalised value, the kind mixed into the message so
  an email and a phone with the same text never share a pseudonym. ``hmac_sql`` computes the
  same bytes in pure DuckDB SQL, and the ``*_sql`` normalisers match the Python ones exactly.
* Masks for display, and the Luhn and PRC-id check digits used by validation and the scanner.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Sequence

import duckdb
import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from c360 import checkdigits
from c360.privacy.keys import Keyring

# --------------------------------------------------------------------------- encryption

TOKEN_VERSION = "v1"
NONCE_BYTES = 12
_TAG_BYTES = 16


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse(token: str) -> tuple[str, bytes]:
    version, key_id, body = (token.split(":", 2) + ["", ""])[:3]
    if version != TOKEN_VERSION or not key_id or not body:
        raise ValueError("not a c360 encryption token (expected v1:<keyid>:<base64url>)")
    try:
        blob = _unb64url(body)
    except ValueError:
        raise InvalidTag() from None
    if len(blob) < NONCE_BYTES + _TAG_BYTES:
        raise InvalidTag()
    return key_id, blob


def token_key_id(token: str) -> str:
    """The id of the key a token was encrypted with."""
    return _parse(token)[0]


def encrypt(value: str, aad: str, keyring: Keyring) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keyring.active_key).encrypt(nonce, value.encode("utf-8"), aad.encode("utf-8"))
    return f"{TOKEN_VERSION}:{keyring.active_key_id}:{_b64url(nonce + sealed)}"


def decrypt(token: str, aad: str, keyring: Keyring) -> str:
    """Raises ``InvalidTag`` when the token was altered or the AAD is not the one used."""
    key_id, blob = _parse(token)
    plain = AESGCM(keyring.key(key_id)).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode("utf-8"))
    return plain.decode("utf-8")


def rewrap(token: str, aad: str, keyring: Keyring) -> str:
    """Re-encrypt under the active key (a token already under it is returned unchanged)."""
    if token_key_id(token) == keyring.active_key_id:
        return token
    return encrypt(decrypt(token, aad, keyring), aad, keyring)


def _as_list(values: pa.Array | pa.ChunkedArray | Sequence | str, n: int | None = None) -> list:
    if isinstance(values, str):
        return [values] * (n or 0)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.to_pylist()
    return list(values)


def encrypt_column(
    values: pa.Array | pa.ChunkedArray | Sequence[str | None],
    aads: pa.Array | pa.ChunkedArray | Sequence[str] | str,
    keyring: Keyring,
) -> pa.Array:
    """Encrypt many values at once; nulls stay null. ``aads`` is per value, or one string."""
    plain = _as_list(values)
    aad_list = _as_list(aads, len(plain))
    if len(aad_list) != len(plain):
        raise ValueError(f"{len(plain)} values but {len(aad_list)} AADs")
    seal = AESGCM(keyring.active_key).encrypt
    prefix = f"{TOKEN_VERSION}:{keyring.active_key_id}:"
    nonces = os.urandom(NONCE_BYTES * len(plain))  # one syscall; every slice is still a fresh nonce
    b64 = base64.urlsafe_b64encode
    out: list[str | None] = []
    append = out.append
    for i, (value, aad) in enumerate(zip(plain, aad_list, strict=True)):
        if value is None:
            append(None)
            continue
        nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
        sealed = seal(nonce, value.encode("utf-8"), aad.encode("utf-8"))
        append(prefix + b64(nonce + sealed).rstrip(b"=").decode("ascii"))
    return pa.array(out, type=pa.string())


def decrypt_column(
    tokens: pa.Array | pa.ChunkedArray | Sequence[str | None],
    aads: pa.Array | pa.ChunkedArray | Sequence[str] | str,
    keyring: Keyring,
) -> pa.Array:
    token_list = _as_list(tokens)
    aad_list = _as_list(aads, len(token_list))
    ciphers: dict[str, AESGCM] = {}
    out: list[str | None] = []
    for token, aad in zip(token_list, aad_list, strict=True):
        if token is None:
            out.append(None)
            continue
        key_id, blob = _parse(token)
        if key_id not in ciphers:
            ciphers[key_id] = AESGCM(keyring.key(key_id))
        plain = ciphers[key_id].decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode("utf-8"))
        out.append(plain.decode("utf-8"))
    return pa.array(out, type=pa.string())


def _quote_ident(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def rotate_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    aad_sql_expr: str,
    keyring: Keyring,
    batch_size: int = 200_000,
) -> int:
    """Re-encrypt every token of ``table.column`` not yet under the active key, in one transaction.

    ``aad_sql_expr`` rebuilds each row's AAD, e.g. ``'crm_customers|' || customer_ref || '|national_id'``.
    Rows are addressed by ``rowid`` and rewrapped in ``batch_size`` chunks through a temp table join.
    Returns the number of rewrapped values.
    """
    tbl, col = _quote_ident(table), _quote_ident(column)
    active_prefix = f"{TOKEN_VERSION}:{keyring.active_key_id}:".replace("'", "''")
    (max_rowid,) = con.execute(f"select coalesce(max(rowid), -1) from {tbl}").fetchone()
    changed = 0
    con.execute("begin transaction")
    try:
        for low in range(0, max_rowid + 1, batch_size):
            batch = con.sql(
                f"select rowid as rid, {col} as token, ({aad_sql_expr})::varchar as aad from {tbl} "
                f"where rowid >= {int(low)} and rowid < {int(low + batch_size)} and {col} is not null "
                f"and not starts_with({col}, '{active_prefix}')"
            ).to_arrow_table()
            if batch.num_rows == 0:
                continue
            aads = batch["aad"].to_pylist()
            plain = decrypt_column(batch["token"], aads, keyring)
            rewrapped = pa.table({"rid": batch["rid"], "token": encrypt_column(plain, aads, keyring)})
            con.register("c360_rewrapped", rewrapped)
            try:
                con.execute(
                    f"update {tbl} set {col} = r.token from c360_rewrapped r where {tbl}.rowid = r.rid"
                )
            finally:
                con.unregister("c360_rewrapped")
            changed += batch.num_rows
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return changed


# --------------------------------------------------------------------------- pseudonyms

KINDS = ("email", "phone", "card", "loyalty", "national_id")

# Whitespace both the Python and the SQL normalisers trim (incl. NBSP and the CJK full-width space).
_TRIM_CHARS = " \t\n\r\v\f\u00a0\u3000"
_TRIM_SQL = " || ".join(f"chr({ord(c)})" for c in _TRIM_CHARS)
# Validated before lowercasing and ASCII-only, so Python and DuckDB lowercase identically.
EMAIL_PATTERN = r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_NON_DIGITS = re.compile(r"[^0-9]")
_MOBILE = re.compile(r"1[0-9]{10}")


def normalise_email(value: str | None) -> str | None:
    """Trim and lowercase; None unless it looks like local@domain.tld (ASCII)."""
    if value is None:
        return None
    trimmed = value.strip(_TRIM_CHARS)
    return trimmed.lower() if _EMAIL_RE.fullmatch(trimmed) else None


def normalise_phone(value: str | None) -> str | None:
    """The 11-digit mainland mobile number, without +86/0086; None otherwise."""
    if value is None:
        return None
    digits = _NON_DIGITS.sub("", value)
    if len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    elif len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits if _MOBILE.fullmatch(digits) else None


def normalise_card(value: str | None) -> str | None:
    """Digits only (ASCII); None when there are none."""
    if value is None:
        return None
    return _NON_DIGITS.sub("", value) or None


def normalise_loyalty_card(value: str | None) -> str | None:
    """Trimmed, upper-cased, spaces and dashes removed (``lc-0000 1234`` -> ``LC00001234``); ASCII only."""
    if value is None:
        return None
    trimmed = value.strip(_TRIM_CHARS)
    return re.sub(r"[ \-]", "", trimmed).upper() or None if trimmed.isascii() else None


def normalise_national_id(value: str | None) -> str | None:
    """Trimmed, upper-cased (check character ``X``); None unless 18 characters [0-9]{17}[0-9X]."""
    if value is None:
        return None
    trimmed = value.strip(_TRIM_CHARS).upper()
    return trimmed if re.fullmatch(r"[0-9]{17}[0-9X]", trimmed) else None


_NORMALISERS = {
    "email": normalise_email,
    "phone": normalise_phone,
    "card": normalise_card,
    "loyalty": normalise_loyalty_card,
    "national_id": normalise_national_id,
}


def normalise(kind: str, value: str | None) -> str | None:
    return _NORMALISERS[_check_kind(kind)](value)


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown pseudonym kind {kind!r}; expected one of {KINDS}")
    return kind


def pseudonym(value: str | None, keyring: Keyring, kind: str) -> str | None:
    """HMAC-SHA-256 hex of ``"<kind>:<normalised value>"``; None for values that do not normalise."""
    normalised = normalise(kind, value)
    if normalised is None:
        return None
    return hmac.new(keyring.hmac_key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sql(kind: str, keyring: Keyring, column: str | None = None) -> str:
    """A DuckDB expression computing ``pseudonym`` over an already-normalised VARCHAR.

    Returns a template with a ``{col}`` placeholder (``.format(col=...)``), or the filled-in
    expression when ``column`` is given. The text embeds key-derived pads: run it, never log it
    or write it to a compiled dbt model.
    """
    ipad, opad = _hmac_pads(keyring.hmac_key)
    kind = _check_kind(kind)
    expr = f"sha256(unhex('{opad.hex()}') || unhex(sha256(unhex('{ipad.hex()}') || encode('{kind}:' || ({{col}})))))"
    return expr.format(col=column) if column is not None else expr


def normalise_email_sql(col: str) -> str:
    trimmed = f"trim(({col}), {_TRIM_SQL})"
    pattern = EMAIL_PATTERN.replace("'", "''")
    return f"(case when regexp_full_match({trimmed}, '{pattern}') then lower({trimmed}) end)"


def normalise_phone_sql(col: str) -> str:
    digits = f"regexp_replace(({col}), '[^0-9]', '', 'g')"
    stripped = (
        f"(case when length({digits}) = 15 and starts_with({digits}, '0086') then substr({digits}, 5) "
        f"when length({digits}) = 13 and starts_with({digits}, '86') then substr({digits}, 3) "
        f"else {digits} end)"
    )
    return f"(case when regexp_full_match({stripped}, '1[0-9]{{10}}') then {stripped} end)"


def normalise_card_sql(col: str) -> str:
    return f"nullif(regexp_replace(({col}), '[^0-9]', '', 'g'), '')"


def normalise_loyalty_card_sql(col: str) -> str:
    trimmed = f"trim(({col}), {_TRIM_SQL})"
    return (
        f"(case when regexp_full_match({trimmed}, '[\\x00-\\x7f]*') "
        f"then nullif(upper(regexp_replace({trimmed}, '[ \\-]', '', 'g')), '') end)"
    )


def normalise_national_id_sql(col: str) -> str:
    trimmed = f"upper(trim(({col}), {_TRIM_SQL}))"
    return f"(case when regexp_full_match({trimmed}, '[0-9]{{17}}[0-9X]') then {trimmed} end)"


_NORMALISERS_SQL = {
    "email": normalise_email_sql,
    "phone": normalise_phone_sql,
    "card": normalise_card_sql,
    "loyalty": normalise_loyalty_card_sql,
    "national_id": normalise_national_id_sql,
}


def normalise_sql(kind: str, col: str) -> str:
    return _NORMALISERS_SQL[_check_kind(kind)](col)


def register_udfs(con: duckdb.DuckDBPyConnection, keyring: Keyring) -> None:
    """Vectorised (Arrow) UDFs for SQL that needs the keys at run time:

    ``c360_encrypt(value, aad)``, ``c360_decrypt(token, aad)`` and ``c360_pseudonym(kind, value)``
    (the same as ``pseudonym``; ``hmac_sql`` is the faster pure-SQL route to it).
    """
    varchar = duckdb.sqltype("VARCHAR")

    def _encrypt(values: pa.Array, aads: pa.Array) -> pa.Array:
        return encrypt_column(values, aads, keyring)

    def _decrypt(tokens: pa.Array, aads: pa.Array) -> pa.Array:
        return decrypt_column(tokens, aads, keyring)

    def _pseudonym(kinds: pa.Array, values: pa.Array) -> pa.Array:
        return pa.array(
            [pseudonym(v, keyring, k) for k, v in zip(kinds.to_pylist(), values.to_pylist(), strict=True)],
            type=pa.string(),
        )

    for name, func in (
        ("c360_encrypt", _encrypt),
        ("c360_decrypt", _decrypt),
        ("c360_pseudonym", _pseudonym),
    ):
        con.create_function(
            name, func, [varchar, varchar], varchar, type="arrow", null_handling="special", side_effects=True
        )


# --------------------------------------------------------------------------- masks


def mask_email(value: str | None) -> str | None:
    """``john.doe@example.com`` -> ``j***@example.com``; ``***`` when it is not an email."""
    email = normalise_email(value)
    if email is None:
        return None if value is None else "***"
    local, _, domain = email.partition("@")
    return f"{local[0]}***@{domain}"


def mask_phone(value: str | None) -> str | None:
    """``*******5678``: only the last four digits."""
    if value is None:
        return None
    digits = normalise_phone(value) or _NON_DIGITS.sub("", value)
    return "*" * 7 + digits[-4:] if len(digits) >= 4 else "***"


def mask_card(value: str | None) -> str | None:
    """``**** **** **** 1234``: only the last four digits."""
    digits = normalise_card(value)
    if digits is None:
        return None if value is None else "***"
    return "**** **** **** " + digits[-4:] if len(digits) >= 4 else "***"


def mask_national_id(value: str | None) -> str | None:
    """``**************123X``: only the last four characters."""
    if value is None:
        return None
    trimmed = value.strip(_TRIM_CHARS).upper()
    return "*" * 14 + trimmed[-4:] if len(trimmed) >= 8 else "***"


def mask_email_sql(col: str) -> str:
    email = normalise_email_sql(col)
    return (
        f"(case when ({col}) is null then null when {email} is null then '***' "
        f"else left({email}, 1) || '***@' || split_part({email}, '@', 2) end)"
    )


def mask_phone_sql(col: str) -> str:
    digits = f"coalesce({normalise_phone_sql(col)}, regexp_replace(({col}), '[^0-9]', '', 'g'))"
    return f"(case when ({col}) is null then null when length({digits}) >= 4 then '*******' || right({digits}, 4) else '***' end)"


def mask_card_sql(col: str) -> str:
    digits = f"regexp_replace(({col}), '[^0-9]', '', 'g')"
    return (
        f"(case when ({col}) is null then null when length({digits}) >= 4 "
        f"then '**** **** **** ' || right({digits}, 4) else '***' end)"
    )


def mask_national_id_sql(col: str) -> str:
    trimmed = f"upper(trim(({col}), {_TRIM_SQL}))"
    return (
        f"(case when ({col}) is null then null when length({trimmed}) >= 8 "
        f"then repeat('*', 14) || right({trimmed}, 4) else '***' end)"
    )


# --------------------------------------------------------------------------- validators


def luhn_valid(card: str | None) -> bool:
    """Luhn checksum over the digits (separators ignored); False under two digits."""
    return checkdigits.luhn_valid(normalise_card(card) or "")


def prc_id_valid(id18: str | None) -> bool:
    """ISO 7064 MOD 11-2 check character of an 18-character PRC resident id."""
    value = normalise_national_id(id18)
    return value is not None and checkdigits.prc_id_valid(value)
