"""Sorting helpers: numpy's vectorised ``np.sort`` on packed int64 keys instead of ``np.lexsort``.

``np.lexsort`` runs one stable indirect sort per key; packing the keys and the row number into a
single int64 and sorting the values is several times faster and gives exactly the same order
(ties fall back to row order, as lexsort's stability does).
"""

from __future__ import annotations

import numpy as np


def lexsort(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """``np.lexsort(keys)`` (last key primary, ties in row order) for integer keys."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    row_bits = (n - 1).bit_length()
    spans, total = [], row_bits
    for k in keys:
        if k.dtype.kind not in "iub":
            return np.lexsort(keys)
        lo = int(k.min())
        bits = (int(k.max()) - lo).bit_length()
        spans.append((k, lo, bits))
        total += bits
    if total - row_bits > 63:
        return np.lexsort(keys)
    # With room for the row number, sort values; else one stable argsort of the packed keys.
    with_rows = total <= 63
    packed = np.arange(n, dtype=np.int64) if with_rows else np.zeros(n, dtype=np.int64)
    shift = row_bits if with_rows else 0
    for k, lo, bits in spans:
        if bits:
            packed |= (k.astype(np.int64) - lo) << shift
        shift += bits
    if not with_rows:
        return np.argsort(packed, kind="stable")
    packed.sort()
    packed &= (1 << row_bits) - 1
    return packed
