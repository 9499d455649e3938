"""The keyring: AES-256-GCM encryption keys and the HMAC pseudonym key.

Keys come from the environment (``C360_ENCRYPTION_KEYS`` = ``keyid:base64key,...`` with the
active key first, ``C360_HMAC_KEY`` = base64) or from a JSON key file (``C360_KEY_FILE``,
default ``<keys_dir>/keys.json``)::

    {"active": "k2", "encryption": {"k1": "<b64>", "k2": "<b64>"}, "hmac": "<b64>"}

The environment wins over the file. Keys never live in the repository. Rotation adds a new
active encryption key and keeps the old ones for decryption; the HMAC key is never rotated
here, because every pseudonym (and so every stitched identity) depends on it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from c360.settings import Settings, get_settings

ENV_ENCRYPTION_KEYS = "C360_ENCRYPTION_KEYS"
ENV_HMAC_KEY = "C360_HMAC_KEY"
ENV_KEY_FILE = "C360_KEY_FILE"

AES_KEY_BYTES = 32
HMAC_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class MissingKeyError(RuntimeError):
    """No usable key configuration was found (or a token names a key we do not have)."""


class KeyConfigError(ValueError):
    """A key configuration exists but is malformed."""


def key_file_path(settings: Settings) -> Path:
    return Path(os.environ.get(ENV_KEY_FILE) or settings.keys_dir / "keys.json")


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (ValueError, TypeError) as exc:
        raise KeyConfigError(f"{what} is not valid base64") from exc


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Keyring:
    active_key_id: str
    encryption_keys: dict[str, bytes]
    hmac_key: bytes = field(repr=False)
    source: str = ""  # "environment" or the key file path: for messages, never the keys

    def __post_init__(self) -> None:
        for key_id, key in self.encryption_keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise KeyConfigError(f"key id {key_id!r} must match {_KEY_ID.pattern}")
            if len(key) != AES_KEY_BYTES:
                raise KeyConfigError(f"encryption key {key_id!r} must be {AES_KEY_BYTES} bytes (AES-256)")
        if self.active_key_id not in self.encryption_keys:
            raise KeyConfigError(f"active key {self.active_key_id!r} is not among the encryption keys")
        if len(self.hmac_key) < 16:
            raise KeyConfigError("the HMAC key must be at least 16 bytes (32 recommended)")

    def __repr__(self) -> str:
        return f"Keyring(active={self.active_key_id!r}, keys={sorted(self.encryption_keys)}, source={self.source!r})"

    @property
    def active_key(self) -> bytes:
        return self.encryption_keys[self.active_key_id]

    def key(self, key_id: str) -> bytes:
        try:
            return self.encryption_keys[key_id]
        except KeyError:
            raise MissingKeyError(
                f"no encryption key {key_id!r} in the keyring from {self.source} "
                f"(known: {', '.join(sorted(self.encryption_keys))})"
            ) from None

    @classmethod
    def generate(cls, key_id: str = "k1") -> Keyring:
        return cls(
            key_id,
            {key_id: secrets.token_bytes(AES_KEY_BYTES)},
            secrets.token_bytes(HMAC_KEY_BYTES),
            "generated",
        )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Keyring | None:
        env = os.environ if environ is None else environ
        enc, mac = env.get(ENV_ENCRYPTION_KEYS, "").strip(), env.get(ENV_HMAC_KEY, "").strip()
        if not enc and not mac:
            return None
        if not enc or not mac:
            missing = ENV_ENCRYPTION_KEYS if not enc else ENV_HMAC_KEY
            raise MissingKeyError(f"{missing} is not set; set both {ENV_ENCRYPTION_KEYS} and {ENV_HMAC_KEY}")
        keys: dict[str, bytes] = {}
        for pair in filter(None, (p.strip() for p in enc.split(","))):
            key_id, sep, b64 = pair.partition(":")
            if not sep:
                raise KeyConfigError(f"{ENV_ENCRYPTION_KEYS} entries must be keyid:base64key")
            keys[key_id.strip()] = _b64decode(b64, f"{ENV_ENCRYPTION_KEYS} key {key_id.strip()!r}")
        active = next(iter(keys))
        return cls(active, keys, _b64decode(mac, ENV_HMAC_KEY), "environment")

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.warn(f"key file {path} is readable by group/others; chmod 600 it", stacklevel=2)
        try:
            doc = json.loads(path.read_text())
            keys = {k: _b64decode(v, f"{path}: key {k!r}") for k, v in doc["encryption"].items()}
            return cls(doc["active"], keys, _b64decode(doc["hmac"], f"{path}: hmac"), str(path))
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise KeyConfigError(f"{path} is not a valid key file ({exc!r})") from exc

    @classmethod
    def load(cls, settings: Settings | None = None) -> Keyring:
        settings = settings or get_settings()
        from_env = cls.from_env()
        if from_env is not None:
            return from_env
        path = key_file_path(settings)
        if path.is_file():
            return cls.from_file(path)
        raise MissingKeyError(
            f"No encryption keys configured: set {ENV_ENCRYPTION_KEYS} (keyid:base64key,...) and "
            f"{ENV_HMAC_KEY} (base64), or create the key file {path} (set {ENV_KEY_FILE} to move it) "
            "with `c360 keys init`."
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "active": self.active_key_id,
                "encryption": {k: _b64encode(v) for k, v in self.encryption_keys.items()},
                "hmac": _b64encode(self.hmac_key),
            },
            indent=2,
        )

    def rotated(self) -> Keyring:
        """A copy with a fresh active key ``k<n+1>``; old keys stay for decryption."""
        numbers = [int(m.group(1)) for k in self.encryption_keys if (m := re.fullmatch(r"k(\d+)", k))]
        new_id = f"k{max(numbers, default=0) + 1}"
        while new_id in self.encryption_keys:
            new_id += "_"
        keys = {**self.encryption_keys, new_id: secrets.token_bytes(AES_KEY_BYTES)}
        return Keyring(new_id, keys, self.hmac_key, self.source)


def write_key_file(keyring: Keyring, path: Path, *, overwrite: bool = False) -> Path:
    """Write atomically with 0600 permissions (the directory gets 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() and not overwrite:
        raise FileExistsError(f"key file {path} already exists")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(keyring.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def ensure_dev_keys(settings: Settings | None = None) -> Path | None:
    """Create a local key file if no keys are configured (``make demo``). Returns its path, or
    None when the keys come from the environment."""
    settings = settings or get_settings()
    if Keyring.from_env() is not None:
        return None
    path = key_file_path(settings)
    if not path.exists():
        write_key_file(Keyring.generate(), path)
    return path
