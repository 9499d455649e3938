"""A benchmark landing folder with a held-out "new day" slice for the incremental run.

The loader (``c360.ingest.loader``) records every landing file once by SHA-256 and skips it
afterwards, so new data reaches the platform as new files. To time a daily incremental run we
take the rows of the last ``days`` days out of the landing files before the full build (into
``<held_out>/<source>/<file>_new.csv``) and drop those files into the landing afterwards.

Files wholly older than the cut-off are symlinked, not copied (an L landing is tens of GB).
A split file is rewritten record by record with the original bytes, so malformed lines and
the other planted defects reach the loader exactly as generated.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from c360.contracts import SOURCES

MONTH_IN_NAME = re.compile(r"_(\d{4})-(\d{2})\.[a-z]+$")
# Order lines carry no time: they follow their order.
FOLLOWS_ORDERS = "ecommerce_order_items"


@dataclass
class HeldOut:
    cutoff: str
    rows_held_out: int = 0
    bytes_total: int = 0
    bytes_held_out: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        """Share of the landing's bytes held out (counting rows would mean reading every file)."""
        return round(self.bytes_held_out / self.bytes_total, 4) if self.bytes_total else 0.0


def _records(fh):
    """Logical CSV records as raw bytes: a quoted field may span lines (an odd quote count)."""
    pending = b""
    for line in fh:
        pending += line
        if pending.count(b'"') % 2 == 0:
            yield pending
            pending = b""
    if pending:
        yield pending


def _field(record: bytes, index: int) -> str | None:
    try:
        row = next(csv.reader(io.StringIO(record.decode("utf-8", errors="replace"))))
        return row[index] if index < len(row) else None
    except (csv.Error, StopIteration):
        return None


def _last_event_day(landing: Path) -> datetime:
    """The generator's end date (``_truth/manifest.json``), else the latest order day of the
    latest month file; the planted future timestamps must not move it."""
    manifest = landing / "_truth" / "manifest.json"
    if manifest.exists() and (end := json.loads(manifest.read_text()).get("end_date")):
        return datetime.fromisoformat(end)
    import duckdb

    files = sorted((landing / "ecommerce_orders").glob("*.csv"))
    month = MONTH_IN_NAME.search(files[-1].name) if files else None
    if not month:
        raise ValueError(
            f"{landing} holds no ecommerce_orders/<name>_YYYY-MM.csv: not a generated landing folder"
        )
    value = duckdb.sql(
        f"select max(t) from (select try_cast(ordered_at as timestamp) as t from read_csv({[str(files[-1])]}, "
        "all_varchar = true, ignore_errors = true)) "
        f"where t < date '{month[1]}-{month[2]}-01' + interval 1 month"
    ).fetchall()[0][0]
    return datetime.combine(value.date(), datetime.min.time())


def _split_file(src: Path, keep_to: Path, new_to: Path, keep) -> tuple[int, int]:
    kept = held = 0
    keep_to.parent.mkdir(parents=True, exist_ok=True)
    new_to.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fh, open(keep_to, "wb") as k, open(new_to, "wb") as n:
        records = _records(fh)
        header = next(records, b"")
        k.write(header)
        n.write(header)
        for record in records:
            if keep(record):
                k.write(record)
                kept += 1
            else:
                n.write(record)
                held += 1
    if not held:
        new_to.unlink()
    return kept, held


def prepare_landing(source_landing: Path, landing: Path, held_out: Path, days: int) -> HeldOut:
    """Fill ``landing`` from ``source_landing`` minus the last ``days`` days, which go to ``held_out``."""
    if landing.exists():
        shutil.rmtree(landing)
    if held_out.exists():
        shutil.rmtree(held_out)
    end = _last_event_day(source_landing) + timedelta(days=1)
    cut = (end - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")
    until = end.strftime("%Y-%m-%d")
    summary = HeldOut(cutoff=cut)
    held_orders: set[str] = set()
    # Orders first: their lines follow them.
    for extra in source_landing.iterdir():
        if extra.name not in SOURCES:
            landing.mkdir(parents=True, exist_ok=True)
            (landing / extra.name).symlink_to(extra.resolve())
    order = sorted(SOURCES, key=lambda s: (s == FOLLOWS_ORDERS, s))
    for name in order:
        folder = source_landing / name
        if not folder.is_dir():
            continue
        source = SOURCES[name]
        for src in sorted(folder.iterdir()):
            dest = landing / name / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            summary.bytes_total += src.stat().st_size
            month = MONTH_IN_NAME.search(src.name)
            whole = (
                days <= 0
                or src.suffix != ".csv"
                or (month and f"{month[1]}-{month[2]}" < cut[:7])
                or (not source.event_time and name != FOLLOWS_ORDERS)
            )
            if whole:
                dest.symlink_to(src.resolve())
                continue
            header = next(csv.reader(io.StringIO(src.open(encoding="utf-8").readline())))
            if name == FOLLOWS_ORDERS:
                index = header.index("order_id")

                def keep(record: bytes, index=index) -> bool:
                    return _field(record, index) not in held_orders
            else:
                index = header.index(source.event_time[0])

                key = header.index("order_id") if name == "ecommerce_orders" else None

                def keep(record: bytes, index=index, key=key) -> bool:
                    value = _field(record, index)
                    # Unparseable and future times stay in the full build (the loader judges them there).
                    if value is None or len(value) < 10 or not cut[:10] <= value[:10] < until:
                        return True
                    if key is not None:
                        held_orders.add(_field(record, key) or "")
                    return False

            new = held_out / name / f"{src.stem}_new{src.suffix}"
            _, held = _split_file(src, dest, new, keep)
            summary.rows_held_out += held
            if held:
                summary.bytes_held_out += new.stat().st_size
                summary.files.append(str(new.relative_to(held_out)))
    return summary


def release_held_out(held_out: Path, landing: Path) -> list[Path]:
    """Move the held-out files into the landing, as a new day's delivery."""
    moved = []
    for path in sorted(held_out.rglob("*.csv")):
        dest = landing / path.relative_to(held_out)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), dest)
        moved.append(dest)
    return moved
