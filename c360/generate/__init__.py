"""Synthetic demo data: a landing zone that follows ``c360.contracts`` plus ``_truth/`` answer keys.

``generate(out_dir, customers=...)`` writes it (``c360 generate`` is cli/generate.py).
"""

from c360.generate.core import generate

__all__ = ["generate"]
