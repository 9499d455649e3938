"""Generators of valid-looking personal data for the privacy tests (never real people)."""

from __future__ import annotations

import random

from c360.checkdigits import prc_check_char


def luhn_card(rng: random.Random, prefix: str = "622202", length: int = 16) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = body + check
        total = sum(
            int(d) if i % 2 == 0 else (2 * int(d) - 9 if int(d) > 4 else 2 * int(d))
            for i, d in enumerate(reversed(digits))
        )
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def prc_id(rng: random.Random) -> str:
    first17 = (
        rng.choice(["110101", "310104", "440305", "510107"])
        + f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        + f"{rng.randint(0, 999):03d}"
    )
    return first17 + prc_check_char(first17)


def mobile(rng: random.Random) -> str:
    return rng.choice(["138", "139", "186", "150", "177"]) + f"{rng.randint(0, 10**8 - 1):08d}"
