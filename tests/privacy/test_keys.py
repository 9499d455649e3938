from __future__ import annotations

import base64
import json
import stat

import pytest
from click.testing import CliRunner

from c360.privacy.keys import (
    KeyConfigError,
    Keyring,
    MissingKeyError,
    ensure_dev_keys,
    key_file_path,
)
from c360.settings import get_settings
from cli.privacy import keys_command


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_missing_keys_error_names_the_env_vars_and_the_key_file():
    settings = get_settings()
    with pytest.raises(MissingKeyError) as excinfo:
        Keyring.load(settings)
    message = str(excinfo.value)
    assert "C360_ENCRYPTION_KEYS" in message
    assert "C360_HMAC_KEY" in message
    assert str(settings.keys_dir / "keys.json") in message


def test_half_configured_environment_says_which_variable_is_missing(monkeypatch):
    monkeypatch.setenv("C360_ENCRYPTION_KEYS", f"k1:{_b64(bytes(32))}")
    with pytest.raises(MissingKeyError, match="C360_HMAC_KEY is not set"):
        Keyring.load(get_settings())


def test_environment_keys_first_pair_is_active_and_win_over_the_file(monkeypatch):
    ensure_dev_keys(get_settings())
    monkeypatch.setenv("C360_ENCRYPTION_KEYS", f"k7:{_b64(b'a' * 32)}, k6:{_b64(b'b' * 32)}")
    monkeypatch.setenv("C360_HMAC_KEY", _b64(b"h" * 32))
    keyring = Keyring.load(get_settings())
    assert keyring.active_key_id == "k7"
    assert keyring.encryption_keys == {"k7": b"a" * 32, "k6": b"b" * 32}
    assert keyring.hmac_key == b"h" * 32
    assert keyring.source == "environment"


def test_short_encryption_key_is_rejected(monkeypatch):
    monkeypatch.setenv("C360_ENCRYPTION_KEYS", f"k1:{_b64(bytes(16))}")
    monkeypatch.setenv("C360_HMAC_KEY", _b64(bytes(32)))
    with pytest.raises(KeyConfigError, match="32 bytes"):
        Keyring.load(get_settings())


def test_keys_init_creates_a_private_key_file_and_refuses_to_overwrite_it():
    runner = CliRunner()
    result = runner.invoke(keys_command, ["init"])
    assert result.exit_code == 0, result.output
    path = key_file_path(get_settings())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["active"] == "k1"
    assert len(base64.b64decode(doc["encryption"]["k1"])) == 32
    assert len(base64.b64decode(doc["hmac"])) == 32
    assert doc["encryption"]["k1"] not in result.output

    again = runner.invoke(keys_command, ["init"])
    assert again.exit_code != 0
    assert "already exists" in again.output
    assert json.loads(path.read_text()) == doc


def test_keys_rotate_adds_an_active_key_and_keeps_the_old_ones():
    runner = CliRunner()
    runner.invoke(keys_command, ["init"])
    before = Keyring.load(get_settings())
    result = runner.invoke(keys_command, ["rotate"])
    assert result.exit_code == 0, result.output
    after = Keyring.load(get_settings())
    assert after.active_key_id == "k2"
    assert after.encryption_keys["k1"] == before.encryption_keys["k1"]
    assert after.hmac_key == before.hmac_key
    assert stat.S_IMODE(key_file_path(get_settings()).stat().st_mode) == 0o600


def test_key_file_location_follows_c360_key_file(monkeypatch, tmp_path):
    monkeypatch.setenv("C360_KEY_FILE", str(tmp_path / "elsewhere" / "k.json"))
    path = ensure_dev_keys(get_settings())
    assert path == tmp_path / "elsewhere" / "k.json"
    assert Keyring.load(get_settings()).source == str(path)


def test_ensure_dev_keys_is_idempotent():
    settings = get_settings()
    path = ensure_dev_keys(settings)
    first = path.read_text()
    assert ensure_dev_keys(settings) == path
    assert path.read_text() == first


def test_keyring_repr_never_shows_key_material(keyring):
    assert keyring.encryption_keys["k1"].hex() not in repr(keyring)
    assert str(keyring.encryption_keys["k1"]) not in repr(keyring)
