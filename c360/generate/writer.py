"""Writes contract-shaped tables as CSV (RFC 4180, fixed formats) or Parquet, and records defects.

A table arrives as typed pyarrow arrays in contract order plus one defect code per row. Rows
coded ``malformed_line`` are corrupted only in CSV (Parquet has no lines to break) and are
reported by physical line number; every other defect is reported by the row's key.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from c360.contracts import RULES, SOURCES

DEFECT_TYPES = list(RULES)
CODE = {name: i + 1 for i, name in enumerate(DEFECT_TYPES)}
BAD_TIMESTAMPS = ["2026-13-45 25:61:00", "2025-02-30 10:00:00", "31/12/2025 10:00", "yesterday 9pm"]

ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("s"),
    "DATE": pa.date32(),
    "DOUBLE": pa.float64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
}


def money_strings(values: pa.Array) -> pa.Array:
    """Fixed two-decimal rendering (-12.5 -> -12.50), nulls kept."""
    x = values.to_numpy(zero_copy_only=False)
    valid = ~np.isnan(x)
    cents = np.round(np.where(valid, x, 0) * 100).astype(np.int64)
    whole = pc.cast(pa.array(np.abs(cents) // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(np.abs(cents) % 100), pa.string()), 2, "0")
    sign = pa.array(np.where(cents < 0, "-", ""), pa.string())
    out = pc.binary_join_element_wise(sign, whole, ".", frac, "")
    return pc.if_else(pa.array(valid), out, pa.nulls(len(x), pa.string()))


def csv_field(arr: pa.Array, typ: str) -> pa.Array:
    if typ == "DOUBLE":
        s = money_strings(arr)
    elif typ == "BOOLEAN":
        s = pc.if_else(arr, "true", "false")
    else:
        s = pc.cast(arr, pa.string())
    if typ == "VARCHAR":
        needs = pc.match_substring_regex(s, r'[",\r\n]')
        if pc.any(needs).as_py():
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(s, '"', '""'), '"', "")
            s = pc.if_else(needs, quoted, s)
    return pc.fill_null(s, "")


def _csv_escape(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in '",\r\n') else value


def concat_lines(lines: pa.Array | pa.ChunkedArray) -> bytes:
    """One newline-terminated line per element, as bytes, without a Python loop over rows.
    At large scale pyarrow hands back ChunkedArrays (and a chunk may use 64-bit offsets), so
    join chunk by chunk."""
    chunks = lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]
    return b"".join(_concat_chunk(c) for c in chunks if len(c))


def _concat_chunk(lines: pa.Array) -> bytes:
    # 64-bit offsets: one chunk of a big file can pass 2 GiB of text.
    lines = lines.cast(pa.large_string())
    nl, empty = pa.scalar("\n", pa.large_string()), pa.scalar("", pa.large_string())
    with_nl = pc.binary_join_element_wise(lines, empty, nl)
    offsets = np.frombuffer(with_nl.buffers()[1], dtype=np.int64)[
        with_nl.offset : with_nl.offset + len(with_nl) + 1
    ]
    return with_nl.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


class Sink:
    """Owns the output folder: writes files, counts rows, collects defects."""

    def __init__(self, out_dir: Path, fmt: str, seed: int):
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be csv or parquet, not {fmt!r}")
        self.out_dir, self.fmt = Path(out_dir), fmt
        self.rng = np.random.default_rng([seed, 991])
        self.rows: Counter[str] = Counter()
        self.files: list[str] = []
        self.defects: list[tuple[str, str, pa.Array, str]] = []

    def write(
        self, source: str, stem: str, columns: dict[str, pa.Array], defect: np.ndarray | None = None
    ) -> str:
        spec = SOURCES[source]
        n = len(columns[spec.key])
        arrays = [columns[c.name].cast(ARROW_TYPES[c.type]) for c in spec.columns]
        defect = np.zeros(n, dtype=np.int8) if defect is None else defect
        rel = f"{source}/{stem}.{self.fmt}"
        path = self.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        malformed = np.flatnonzero(defect == CODE["malformed_line"])
        if self.fmt == "parquet":
            defect = np.where(defect == CODE["malformed_line"], 0, defect)
            pq.write_table(pa.table(arrays, names=spec.column_names), path, compression="zstd")
        else:
            fields = [csv_field(a, c.type) for a, c in zip(arrays, spec.columns)]
            lines = pc.binary_join_element_wise(*fields, ",") if n else pa.array([], pa.string())
            if len(malformed):
                bad = self._corrupt(spec, fields, malformed)
                mask = np.zeros(n, dtype=bool)
                mask[malformed] = True
                lines = pc.replace_with_mask(lines, pa.array(mask), pa.array(bad, pa.string()))
                line_ids = pa.array([f"line:{i + 2}" for i in malformed], pa.string())
                self.defects.append((source, rel, line_ids, "malformed_line"))
            with open(path, "wb") as fh:
                fh.write((",".join(spec.column_names) + "\n").encode())
                fh.write(concat_lines(lines))
        for code in np.unique(defect[(defect > 0) & (defect != CODE["malformed_line"])]):
            ids = arrays[spec.column_names.index(spec.key)].take(pa.array(np.flatnonzero(defect == code)))
            self.defects.append((source, rel, ids, DEFECT_TYPES[code - 1]))
        self.rows[source] += n
        self.files.append(rel)
        return rel

    def _corrupt(self, spec, fields: list[pa.Array], rows: np.ndarray) -> list[str]:
        """Break a line the way real exports do; each kind is rejected by a strict CSV reader."""
        values = [f.take(pa.array(rows)).to_pylist() for f in fields]
        names = spec.column_names
        ts_cols = [i for i, c in enumerate(spec.columns) if c.type == "TIMESTAMP" and c.required]
        text_cols = [i for i, c in enumerate(spec.columns) if c.type == "VARCHAR" and c.name != spec.key]
        out = []
        for r in range(len(rows)):
            row = [v[r] for v in values]
            kind = int(self.rng.integers(0, 4))
            if kind == 0:
                row.append(_csv_escape(str(self.rng.choice(["extra", "N/A", "0", "see notes"]))))
            elif kind == 1:
                row = row[:-1]
            elif kind == 2 and ts_cols:
                row[ts_cols[0]] = str(self.rng.choice(BAD_TIMESTAMPS))
            else:
                i = text_cols[-1] if text_cols else len(names) - 1
                word = "".join(ch for ch in row[i] if ch.isalnum())[:12] or "abc"
                row[i] = f'"{word}"x'  # a quoted field followed by stray characters
            out.append(",".join(row))
        return out

    def write_truth(self, name: str, table: pa.Table) -> str:
        """Truth files are always CSV, whatever the landing format."""
        rel = f"_truth/{name}.csv"
        path = self.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = []
        for col in table.columns:
            col = col.combine_chunks()
            t = col.type
            if pa.types.is_floating(t):
                s = pc.fill_null(pc.cast(pc.round(col, 6), pa.string()), "")
            elif pa.types.is_boolean(t):
                s = pc.fill_null(pc.if_else(col, "true", "false"), "")
            else:
                s = csv_field(pc.cast(col, pa.string()), "VARCHAR")
            fields.append(s)
        with open(path, "wb") as fh:
            fh.write((",".join(table.column_names) + "\n").encode())
            if table.num_rows:
                fh.write(concat_lines(pc.binary_join_element_wise(*fields, ",")))
        return rel

    def defects_table(self) -> pa.Table:
        src, files, ids, types = [], [], [], []
        for source, rel, rec, typ in self.defects:
            k = len(rec)
            src += [source] * k
            files += [rel] * k
            ids.append(pc.cast(rec, pa.string()))
            types += [typ] * k
        record = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
        return pa.table(
            {
                "source": pa.array(src, pa.string()),
                "file": pa.array(files, pa.string()),
                "record_id": record,
                "defect_type": pa.array(types, pa.string()),
            }
        )
