"""CDNOW (Fader, Hardie & Lee 2005) as a bare orders-only landing: the smallest real export a
company brings (one orders file, no CRM, no products, no clickstream).

The CDNOW sample (2,357 customers who first bought in 1997 Q1, purchases to 1998-06-30) ships in
the ``lifetimes`` wheel, which is installed only for this file and never imported (it predates
pandas 3). ``c360 ingest --mapping cdnow`` writes it into the landing zone.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from c360.contracts import SOURCES

SOURCE = "ecommerce_orders"
LANDING_FILE = "cdnow_sample.csv"
ORDER_COLUMNS = SOURCES[SOURCE].column_names


def cdnow_sample_path() -> Path:
    """CDNOW_sample.txt inside the installed lifetimes package, found without importing it."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the lifetimes package (CDNOW data) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "CDNOW_sample.txt"
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def read_cdnow(path: Path | str | None = None) -> pd.DataFrame:
    """The raw sample: whitespace-separated, CRLF, no header, date as YYYYMMDD."""
    return pd.read_csv(
        path or cdnow_sample_path(),
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "dollars"],
        dtype={"master_id": str, "customer_id": str, "date": str, "cds": "int64", "dollars": float},
    )


def cdnow_to_orders(path: Path | str | None = None) -> pd.DataFrame:
    """CDNOW transactions as rows of the ``ecommerce_orders`` landing format.

    One order per file row (same-day rows stay separate orders; the RFM summary merges
    them). account_id uses the master id, so ids stay unique if the full CDNOW set is added.
    """
    raw = read_cdnow(path)
    empty = pd.Series(pd.NA, index=raw.index, dtype="string")
    orders = pd.DataFrame(
        {
            "order_id": "CD"
            + pd.Series(np.arange(1, len(raw) + 1), index=raw.index).astype(str).str.zfill(5),
            "account_id": "CDNOW" + raw["master_id"],
            "email": empty,
            "phone": empty,
            "ordered_at": pd.to_datetime(raw["date"], format="%Y%m%d") + pd.Timedelta(hours=12),
            "channel": "web",
            "status": "delivered",
            "payment_method": empty,
            "promo_code": empty,
            "amount": raw["dollars"],
            "currency": "USD",
            "shipping_postcode": empty,
        }
    )
    return orders[ORDER_COLUMNS]


def map_cdnow(src: Path | None, out_dir: Path) -> dict:
    """Write the CDNOW transactions (``src``: a CDNOW_sample.txt, default the lifetimes wheel's)
    as ``out_dir/ecommerce_orders/cdnow_sample.csv``; returns the file and its rows."""
    orders = cdnow_to_orders(src)
    path = Path(out_dir) / SOURCE / LANDING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    orders.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return {"files": {SOURCE: path}, "rows": {SOURCE: len(orders)}}
