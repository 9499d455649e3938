"""Choosing which rows carry a planted defect: known rates, one defect per row, a floor for tiny runs."""

from __future__ import annotations

import numpy as np

from c360.generate.writer import CODE

# Share of eligible rows per (source, defect type).
RATES = {
    ("ecommerce_orders", "duplicate"): 0.003,
    ("ecommerce_orders", "negative_amount"): 0.002,
    ("ecommerce_orders", "missing_required"): 0.002,
    ("ecommerce_orders", "future_timestamp"): 0.0015,
    ("ecommerce_order_items", "missing_required"): 0.0015,
    ("ecommerce_order_items", "unknown_product"): 0.002,
    ("ecommerce_order_items", "non_positive_quantity"): 0.002,
    ("web_events", "missing_required"): 0.001,
    ("web_events", "future_timestamp"): 0.001,
    ("web_events", "duplicate_key"): 0.001,
    ("web_events", "malformed_line"): 0.0015,
    ("pos_transactions", "negative_amount"): 0.002,
    ("pos_transactions", "unknown_product"): 0.002,
    ("pos_transactions", "malformed_line"): 0.002,
    ("service_tickets", "invalid_email"): 0.005,
    ("service_tickets", "invalid_phone"): 0.005,
    ("service_tickets", "malformed_line"): 0.005,
    ("product_reviews", "missing_required"): 0.003,
    ("product_reviews", "malformed_line"): 0.003,
    ("crm_customers", "invalid_email"): 0.003,
    ("crm_customers", "invalid_phone"): 0.003,
}


def plant(
    rng: np.random.Generator,
    codes: np.ndarray,
    source: str,
    defect: str,
    eligible: np.ndarray | None = None,
    floor: int = 0,
) -> np.ndarray:
    """Mark rows of ``codes`` (in place) with ``defect``; returns the chosen row indices.

    Only rows with no defect yet (and ``eligible``) can be chosen. ``floor`` guarantees a minimum
    count so even a 300-customer run has a few of each kind.
    """
    ok = codes == 0
    if eligible is not None:
        ok &= eligible
    candidates = np.flatnonzero(ok)
    rate = RATES[(source, defect)]
    k = int(np.floor(rate * len(candidates) + rng.random()))
    k = min(max(k, floor), len(candidates) // 4)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    chosen = np.sort(rng.choice(candidates, size=k, replace=False))
    codes[chosen] = CODE[defect]
    return chosen
