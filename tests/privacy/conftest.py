from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Test modules here import the test-only generators in pii_fakes.py (importlib import mode
# does not put a test's folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

from c360.privacy.keys import ENV_ENCRYPTION_KEYS, ENV_HMAC_KEY, ENV_KEY_FILE, Keyring


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own C360_HOME and no keys from the developer's environment."""
    for var in (
        ENV_ENCRYPTION_KEYS,
        ENV_HMAC_KEY,
        ENV_KEY_FILE,
        "C360_KEYS_DIR",
        "C360_WAREHOUSE",
        "C360_LANDING",
        "DAGSTER_HOME",
        "MLFLOW_TRACKING_URI",
        "C360_MLFLOW_ARTIFACTS",
    ):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("C360_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring.generate("k1")
