"""Synthetic demo data: a landing zone that follows ``c360.contracts`` plus ``_truth/`` answer keys.

``generate(out_dir, customers=...)`` writes it; ``generate_command`` is the ``c360 generate`` CLI.
"""

from c360.generate.cli import generate_command
from c360.generate.core import generate

__all__ = ["generate", "generate_command"]
