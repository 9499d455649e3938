"""Mappings: convert another data layout into landing-contract files.

Each mapping is a function ``(src_dir, out_dir, **options) -> summary dict`` that writes
``out_dir/<source>/<file>.csv`` following ``c360.contracts`` (plus ``out_dir/_truth/``), so
that real data goes through the same ingestion pipeline as any customer's own files.
"""

from __future__ import annotations

from c360.ingest.mappings.cdnow import map_cdnow
from c360.ingest.mappings.olist import map_olist

MAPPINGS = {"olist": map_olist, "cdnow": map_cdnow}

__all__ = ["MAPPINGS", "map_cdnow", "map_olist"]
