from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from cryptography.exceptions import InvalidTag

from c360.privacy.crypto import (
    _b64url,
    _unb64url,
    decrypt,
    decrypt_column,
    encrypt,
    encrypt_column,
    rewrap,
    rotate_table,
    token_key_id,
)
from c360.privacy.keys import Keyring, MissingKeyError

AAD = "crm_customers|CRM0000001|national_id"


def test_encrypt_round_trips_unicode_and_names_the_active_key(keyring):
    token = encrypt("王伟 110101199003077777", AAD, keyring)
    assert token.startswith("v1:k1:")
    assert decrypt(token, AAD, keyring) == "王伟 110101199003077777"


def test_same_value_encrypts_to_different_tokens(keyring):
    assert encrypt("x", AAD, keyring) != encrypt("x", AAD, keyring)


@pytest.mark.parametrize("position", [0, 5, 11, 12, 20, -1])
def test_one_flipped_byte_fails_authentication(keyring, position):
    version, key_id, body = encrypt("110101199003077777", AAD, keyring).split(":")
    blob = bytearray(_unb64url(body))
    blob[position] ^= 0x01
    with pytest.raises(InvalidTag):
        decrypt(f"{version}:{key_id}:{_b64url(bytes(blob))}", AAD, keyring)


def test_wrong_aad_fails_authentication(keyring):
    token = encrypt("110101199003077777", AAD, keyring)
    with pytest.raises(InvalidTag):
        decrypt(token, "crm_customers|CRM0000002|national_id", keyring)


def test_truncated_token_fails_authentication(keyring):
    token = encrypt("x", AAD, keyring)
    with pytest.raises(InvalidTag):
        decrypt(token[:20], AAD, keyring)


def test_unknown_key_id_raises_missing_key(keyring):
    token = encrypt("x", AAD, Keyring.generate("k9"))
    with pytest.raises(MissingKeyError, match="k9"):
        decrypt(token, AAD, keyring)


def test_encrypt_column_keeps_nulls_and_round_trips(keyring):
    values = pa.array(["a", None, "ç", ""])
    aads = [f"t|{i}|c" for i in range(4)]
    tokens = encrypt_column(values, aads, keyring)
    assert tokens.type == pa.string()
    assert tokens[1].as_py() is None
    assert decrypt_column(tokens, aads, keyring).to_pylist() == ["a", None, "ç", ""]
    assert decrypt(tokens[2].as_py(), "t|2|c", keyring) == "ç"


def test_encrypt_column_binds_each_value_to_its_own_aad(keyring):
    tokens = encrypt_column(["a", "b"], ["t|1|c", "t|2|c"], keyring).to_pylist()
    with pytest.raises(InvalidTag):
        decrypt(tokens[0], "t|2|c", keyring)


def test_rotation_keeps_old_tokens_readable_and_rewrap_moves_them_to_the_new_key(keyring):
    old = encrypt("6222021234567890", AAD, keyring)
    rotated = keyring.rotated()
    assert rotated.active_key_id == "k2"
    assert decrypt(old, AAD, rotated) == "6222021234567890"
    new = rewrap(old, AAD, rotated)
    assert token_key_id(new) == "k2"
    assert decrypt(new, AAD, rotated) == "6222021234567890"
    assert rewrap(new, AAD, rotated) == new


def test_rotate_table_rewraps_a_duckdb_column_in_batches(keyring, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    n = 2_500
    refs = [f"CRM{i:07d}" for i in range(n)]
    plain = [None if i % 7 == 0 else f"id-{i}" for i in range(n)]
    aads = [f"crm_customers|{r}|national_id" for r in refs]
    with duckdb.connect(str(path)) as con:
        customers = pa.table({"customer_ref": refs, "national_id": encrypt_column(plain, aads, keyring)})
        con.register("customers", customers)
        con.execute("create table crm_customers as select * from customers")
        con.execute("delete from crm_customers where customer_ref = 'CRM0000003'")  # a gap in rowids

    rotated = keyring.rotated()
    aad_sql = "'crm_customers|' || customer_ref || '|national_id'"
    with duckdb.connect(str(path)) as con:
        changed = rotate_table(con, "crm_customers", "national_id", aad_sql, rotated, batch_size=1000)
    assert changed == sum(v is not None for v in plain) - 1

    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select customer_ref, national_id from crm_customers order by customer_ref"
        ).fetchall()
    assert len(rows) == n - 1
    expected = {r: v for r, v in zip(refs, plain, strict=True)}
    for ref, token in rows:
        if expected[ref] is None:
            assert token is None
        else:
            assert token_key_id(token) == "k2"
            assert decrypt(token, f"crm_customers|{ref}|national_id", rotated) == expected[ref]

    with duckdb.connect(str(path)) as con:
        assert rotate_table(con, "crm_customers", "national_id", aad_sql, rotated) == 0


def test_rotate_table_rolls_back_everything_when_a_token_does_not_authenticate(keyring, tmp_path):
    path = tmp_path / "w.duckdb"
    tokens = [encrypt("a", "t|1", keyring), encrypt("b", "t|WRONG", keyring)]
    with duckdb.connect(str(path)) as con:
        con.execute("create table t as select * from (values (1, ?), (2, ?)) v(id, tok)", tokens)
        with pytest.raises(InvalidTag):
            rotate_table(con, "t", "tok", "'t|' || id", keyring.rotated())
        assert sorted(r[0] for r in con.execute("select tok from t").fetchall()) == sorted(tokens)
