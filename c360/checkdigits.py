"""Check digits of the identifiers the platform makes up (the generator) and recognises (privacy:
ingestion, the PII scan): Luhn for bank cards and ISO 7064 MOD 11-2 for 18-character PRC resident
ids, each per value, over a numpy digit matrix, and as DuckDB SQL."""

from __future__ import annotations

import numpy as np

PRC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
PRC_CHECK_CHARS = "10X98765432"


def luhn_valid(digits: str) -> bool:
    """Luhn checksum of a digits-only string; False under two digits."""
    if len(digits) < 2 or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        total += d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d)
    return total % 10 == 0


def luhn_check_digits(payload: np.ndarray) -> np.ndarray:
    """The Luhn check digit of each row of a digit matrix (the number without its check digit)."""
    rev = payload[:, ::-1]
    doubled = rev[:, 0::2] * 2
    total = (doubled // 10 + doubled % 10).sum(axis=1) + rev[:, 1::2].sum(axis=1)
    return (10 - total % 10) % 10


def luhn_valid_sql(digits: str) -> str:
    """SQL boolean: Luhn over a digits-only VARCHAR expression."""
    return (
        f"(list_sum(list_transform(range(length({digits})), lambda i: "
        f"case when i % 2 = 0 then ord(reverse({digits})[i + 1]) - 48 "
        f"else 2 * (ord(reverse({digits})[i + 1]) - 48) - 9 * (ord(reverse({digits})[i + 1]) > 52)::int end)) "
        f"% 10 = 0)"
    )


def prc_check_char(first17: str) -> str:
    return PRC_CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, PRC_WEIGHTS, strict=True)) % 11]


def prc_id_valid(id18: str) -> bool:
    """The check character of an 18-character upper-case PRC resident id is right."""
    return len(id18) == 18 and id18[:17].isdigit() and prc_check_char(id18[:17]) == id18[17]


def prc_check_chars(body: np.ndarray) -> np.ndarray:
    """The check character (as an ASCII code) of each row of a 17-column digit matrix."""
    codes = np.frombuffer(PRC_CHECK_CHARS.encode(), dtype=np.uint8)
    return codes[(body * np.array(PRC_WEIGHTS)).sum(axis=1) % 11]


def prc_id_valid_sql(id18: str) -> str:
    """SQL boolean: the check character of an 18-character upper-case id expression."""
    weights = list(PRC_WEIGHTS)
    return (
        f"(substr('{PRC_CHECK_CHARS}', 1 + cast(list_sum(list_transform(range(17), lambda i: "
        f"(ord(({id18})[i + 1]) - 48) * {weights}[i + 1])) % 11 as bigint), 1) = upper(({id18})[18]))"
    )
