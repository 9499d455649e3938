from __future__ import annotations

import hashlib
import hmac
import random

import duckdb
import pytest
from pii_fakes import luhn_card, mobile, prc_id

from c360.checkdigits import luhn_valid_sql, prc_id_valid_sql
from c360.privacy.crypto import (
    KINDS,
    hmac_sql,
    luhn_valid,
    mask_card,
    mask_card_sql,
    mask_email,
    mask_email_sql,
    mask_national_id,
    mask_national_id_sql,
    mask_phone,
    mask_phone_sql,
    normalise,
    normalise_email,
    normalise_phone,
    normalise_sql,
    prc_id_valid,
    pseudonym,
    register_udfs,
)
from c360.privacy.keys import Keyring

TRICKY = [
    "  John.Doe@Example.COM ",
    "+86 138 1234 5678",
    "0086-138-1234-5678",
    "(+86)13812345678",
    "86 13812345678",
    "138-1234-5678",
    "138123",
    "wang.wei@",
    "@example.com",
    "wang.wei@example",
    "wang..wei@example.com",
    "王伟@例子.中国",
    "wáng@example.com",
    "İSTANBUL@EXAMPLE.COM",
    "\u3000li.na@qq.com\u00a0",
    "\tzhang@163.com\n",
    "li na@qq.com",
    "１３８１２３４５６７８",  # full-width digits are not ASCII digits
    "13812345678 ",
    "023-12345678",
    "8613812345678",
    "008613812345678",
    "1381234567890",
    "lc-0000 1234",
    "LC00001234",
    " 11010119900307777x ",
    "6222 0212 3456 7890",
    "",
    " ",
    None,
]


def _sql_values(con, expr_of_v: str, values: list) -> list:
    return [
        r[0]
        for r in con.execute(
            f"select {expr_of_v} from (select unnest(?::varchar[]) as v, generate_subscripts(?::varchar[], 1) as i) order by i",
            [values, values],
        ).fetchall()
    ]


@pytest.fixture(scope="module")
def con():
    with duckdb.connect() as connection:
        yield connection


def test_normalise_email_trims_and_lowercases_valid_addresses_only():
    assert normalise_email("  John.Doe@Example.COM ") == "john.doe@example.com"
    assert normalise_email("wang.wei@") is None
    assert normalise_email("王伟@例子.中国") is None


def test_normalise_phone_strips_country_code_and_separators():
    for raw in ["+86 138 1234 5678", "0086-138-1234-5678", "(+86)13812345678", "138-1234-5678"]:
        assert normalise_phone(raw) == "13812345678"
    assert normalise_phone("138123") is None
    assert normalise_phone("023-12345678") is None


@pytest.mark.parametrize("kind", KINDS)
def test_sql_normalisers_match_python_exactly(con, kind):
    assert _sql_values(con, normalise_sql(kind, "v"), TRICKY) == [normalise(kind, v) for v in TRICKY]


@pytest.mark.parametrize(
    ("python", "sql"),
    [
        (mask_email, mask_email_sql),
        (mask_phone, mask_phone_sql),
        (mask_card, mask_card_sql),
        (mask_national_id, mask_national_id_sql),
    ],
)
def test_sql_masks_match_python_exactly(con, python, sql):
    assert _sql_values(con, sql("v"), TRICKY) == [python(v) for v in TRICKY]


def test_masks_keep_only_what_identifies_nobody():
    assert mask_email("john.doe@example.com") == "j***@example.com"
    assert mask_phone("+86 138 1234 5678") == "*******5678"
    assert mask_card("6222 0212 3456 1234") == "**** **** **** 1234"
    assert mask_national_id("11010119900307777X") == "**************777X"
    assert mask_email(None) is None


def test_pseudonym_is_keyed_hmac_of_kind_and_normalised_value(keyring):
    expected = hmac.new(keyring.hmac_key, b"email:john.doe@example.com", hashlib.sha256).hexdigest()
    assert pseudonym("  John.Doe@Example.COM ", keyring, "email") == expected
    assert pseudonym("john.doe@example.com", keyring, "email") == expected
    assert pseudonym("wang.wei@", keyring, "email") is None


def test_pseudonym_separates_kinds_and_keys(keyring):
    assert pseudonym("13812345678", keyring, "phone") != pseudonym("13812345678", keyring, "card")
    assert pseudonym("13812345678", keyring, "phone") != pseudonym("13812345678", Keyring.generate(), "phone")


def test_unknown_pseudonym_kind_is_rejected(keyring):
    with pytest.raises(ValueError, match="unknown pseudonym kind"):
        pseudonym("x", keyring, "ssn")


@pytest.mark.parametrize("kind", KINDS)
def test_hmac_sql_equals_python_hmac_byte_for_byte(con, keyring, kind):
    rng = random.Random(7)
    alphabet = "abcXYZ019 .@+-_'\"%\\王伟例子é😀\u3000"
    values = ["", "a", "'", "x" * 200] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(2000)
    ]
    sql = hmac_sql(kind, keyring).format(col="v")
    got = _sql_values(con, sql, values + [None])
    expected = [
        hmac.new(keyring.hmac_key, f"{kind}:{v}".encode(), hashlib.sha256).hexdigest() for v in values
    ]
    assert got == expected + [None]


def test_hmac_sql_of_normalised_column_equals_pseudonym(con, keyring):
    for kind in KINDS:
        expr = hmac_sql(kind, keyring, normalise_sql(kind, "v"))
        assert _sql_values(con, expr, TRICKY) == [pseudonym(v, keyring, kind) for v in TRICKY]


def test_hmac_sql_handles_keys_longer_than_a_block(con):
    long_key = Keyring("k1", {"k1": bytes(32)}, b"L" * 100, "test")
    assert _sql_values(con, hmac_sql("email", long_key, "v"), ["a@b.cn"]) == [
        hmac.new(b"L" * 100, b"email:a@b.cn", hashlib.sha256).hexdigest()
    ]


def test_registered_udfs_agree_with_python(keyring):
    with duckdb.connect() as con:
        register_udfs(con, keyring)
        row = con.execute(
            "select c360_pseudonym('phone', '+86 138 1234 5678'), c360_decrypt(c360_encrypt('secret', 'a|1'), 'a|1'), "
            "c360_encrypt(null, 'a|1')"
        ).fetchone()
    assert row == (pseudonym("13812345678", keyring, "phone"), "secret", None)


def test_luhn_and_prc_check_digits(con):
    rng = random.Random(1)
    cards = [luhn_card(rng) for _ in range(200)]
    ids = [prc_id(rng) for _ in range(200)]
    assert all(luhn_valid(c) for c in cards)
    assert luhn_valid("4111 1111 1111 1111")
    assert not luhn_valid("4111 1111 1111 1112")
    assert prc_id_valid("11010519491231002X")
    assert prc_id_valid("11010519491231002x")
    assert not prc_id_valid("110105194912310021")
    assert all(prc_id_valid(i) for i in ids)
    broken = [i[:17] + ("0" if i[17] != "0" else "1") for i in ids]
    assert not any(prc_id_valid(i) for i in broken)
    assert _sql_values(con, luhn_valid_sql("v"), cards + ["4111111111111112"]) == [True] * 200 + [False]
    assert _sql_values(con, prc_id_valid_sql("v"), ids + broken) == [True] * 200 + [False] * 200
    assert all(normalise_phone(mobile(rng)) for _ in range(50))
