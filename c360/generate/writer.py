"""Writes contract-shaped tables as CSV (RFC 4180, fixed formats) or Parquet, and records defects.

A table arrives as typed pyarrow arrays in contract order plus one defect code per row. Rows
coded ``malformed_line`` are corrupted only in CSV (Parquet has no lines to break) and are
reported by physical line number; every other defect is reported by the row's key.

CSV goes through pyarrow's C++ writer with quoting off, which renders timestamps, dates,
integers and booleans exactly as ``pc.cast(..., string)`` does and refuses any value holding
a comma, quote or line break; only a table with such values takes the slower path that
quotes field by field. Both give the same bytes.
"""

from __future__ import annotations

from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
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


# Quoting off: pyarrow raises ArrowInvalid on a value that would need quotes.
UNQUOTED = pcsv.WriteOptions(include_header=False, quoting_style="none", batch_size=8192)


def money_strings(values: pa.Array) -> pa.Array:
    """Fixed two-decimal rendering (-12.5 -> -12.50), nulls kept."""
    x = values.to_numpy(zero_copy_only=False)
    valid = ~np.isnan(x)
    cents = np.round(np.where(valid, x, 0) * 100).astype(np.int64)
    # |cents| padded to 3 digits gets its point two from the end: 5 -> 005 -> 0.05.
    out = pc.utf8_lpad(pc.cast(pa.array(np.abs(cents)), pa.string()), 3, "0")
    out = pc.binary_replace_slice(out, -2, -2, ".")
    neg = cents < 0
    if neg.any():
        out = pc.if_else(pa.array(neg), pc.binary_join_element_wise("-", out, ""), out)
    return out if valid.all() else pc.if_else(pa.array(valid), out, pa.nulls(len(x), pa.string()))


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


def _write_csv(
    path: Path,
    names: list[str],
    columns: list[pa.Array],
    types: list[str],
    bad_rows: np.ndarray | None = None,
    bad_lines: list[str] | None = None,
) -> None:
    """Header, then one line per row; row ``bad_rows[i]`` is written as ``bad_lines[i]`` instead."""
    header = (",".join(names) + "\n").encode()
    bad_rows = np.zeros(0, dtype=np.int64) if bad_rows is None else bad_rows
    bad_lines = bad_lines or []
    table = pa.table(columns, names=[f"c{i}" for i in range(len(names))])
    try:
        with pa.OSFile(str(path), "wb") as fh:
            fh.write(header)
            writer = pcsv.CSVWriter(fh, table.schema, write_options=UNQUOTED)
            prev = 0
            for row, line in zip(bad_rows.tolist(), bad_lines):
                if row > prev:
                    writer.write_table(table.slice(prev, row - prev))
                fh.write((line + "\n").encode())
                prev = row + 1
            if prev < table.num_rows:
                writer.write_table(table.slice(prev))
            writer.close()
            return
    except pa.ArrowInvalid:
        pass  # some value needs quotes: rewrite the file quoting field by field
    n = table.num_rows
    fields = [csv_field(a, t) for a, t in zip(columns, types)]
    lines = pc.binary_join_element_wise(*fields, ",") if n else pa.array([], pa.string())
    if len(bad_rows):
        mask = np.zeros(n, dtype=bool)
        mask[bad_rows] = True
        lines = pc.replace_with_mask(lines, pa.array(mask), pa.array(bad_lines, pa.string()))
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(concat_lines(lines))


class Sink:
    """Owns the output folder: writes files, counts rows, collects defects.

    Files are written by one background thread, in the order they were handed over, while the
    caller computes the next ones (pyarrow's writer and kernels release the GIL). A column may
    be given as a function of no arguments, called on that thread: spelling out ids there keeps
    them off the critical path. A caller must not change an array after handing it over.
    A writer error is raised by the next ``write``, ``flush`` or ``close``; ``rows``, ``files``
    and ``defects`` are complete only after ``flush``.
    """

    MAX_PENDING_BYTES = 512 << 20  # arrays queued for writing; beyond this ``write`` waits

    def __init__(self, out_dir: Path, fmt: str, seed: int):
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be csv or parquet, not {fmt!r}")
        self.out_dir, self.fmt = Path(out_dir), fmt
        self.rng = np.random.default_rng([seed, 991])
        self.rows: Counter[str] = Counter()
        self.files: list[str] = []
        self.defects: list[tuple[str, str, pa.Array, str]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="c360-generate-writer")
        self._pending: deque[tuple[Future, int]] = deque()
        self._pending_bytes = 0

    def write(
        self, source: str, stem: str, columns: dict[str, pa.Array], defect: np.ndarray | None = None
    ) -> str:
        rel = f"{source}/{stem}.{self.fmt}"
        (self.out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        size = sum(getattr(c, "nbytes", 0) for c in columns.values()) + getattr(defect, "nbytes", 0)
        self._submit(size, self._write, source, rel, columns, defect)
        return rel

    def write_truth(self, name: str, table: pa.Table) -> str:
        """Truth files are always CSV, whatever the landing format."""
        rel = f"_truth/{name}.csv"
        (self.out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        self._submit(table.nbytes, self._write_truth, rel, table)
        return rel

    def flush(self) -> None:
        """Wait for every queued file; a writer error is raised here."""
        while self._pending:
            future, size = self._pending.popleft()
            self._pending_bytes -= size
            future.result()

    def close(self) -> None:
        """Flush, then stop the writer thread."""
        try:
            self.flush()
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop the writer thread after the file in progress; queued files are dropped."""
        self._pending.clear()
        self._pending_bytes = 0
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, size: int, fn, *args) -> None:
        self._pending.append((self._pool.submit(fn, *args), size))
        self._pending_bytes += size
        while self._pending and (self._pending_bytes > self.MAX_PENDING_BYTES or self._pending[0][0].done()):
            future, done = self._pending.popleft()
            self._pending_bytes -= done
            future.result()

    def _write(self, source: str, rel: str, columns: dict[str, pa.Array], defect: np.ndarray | None) -> None:
        spec = SOURCES[source]
        columns = {k: v() if callable(v) else v for k, v in columns.items()}
        n = len(columns[spec.key])
        arrays = [columns[c.name].cast(ARROW_TYPES[c.type]) for c in spec.columns]
        defect = np.zeros(n, dtype=np.int8) if defect is None else defect
        path = self.out_dir / rel
        malformed = np.flatnonzero(defect == CODE["malformed_line"])
        if self.fmt == "parquet":
            defect = np.where(defect == CODE["malformed_line"], 0, defect)
            pq.write_table(pa.table(arrays, names=spec.column_names), path, compression="zstd")
        else:
            bad: list[str] = []
            if len(malformed):
                sel = pa.array(malformed)
                bad = self._corrupt(
                    spec, [csv_field(a.take(sel), c.type) for a, c in zip(arrays, spec.columns)]
                )
                line_ids = pc.binary_join_element_wise(
                    "line:", pc.cast(pa.array(malformed + 2), pa.string()), ""
                )
                self.defects.append((source, rel, line_ids, "malformed_line"))
            # Money is rendered to text first; from then on it is a plain string column.
            ready = [money_strings(a) if c.type == "DOUBLE" else a for a, c in zip(arrays, spec.columns)]
            types = ["VARCHAR" if c.type == "DOUBLE" else c.type for c in spec.columns]
            _write_csv(path, spec.column_names, ready, types, malformed, bad)
        for code in np.unique(defect[(defect > 0) & (defect != CODE["malformed_line"])]):
            ids = arrays[spec.column_names.index(spec.key)].take(pa.array(np.flatnonzero(defect == code)))
            self.defects.append((source, rel, ids, DEFECT_TYPES[code - 1]))
        self.rows[source] += n
        self.files.append(rel)

    def _write_truth(self, rel: str, table: pa.Table) -> None:
        columns, types = [], []
        for col in table.columns:
            col = col.combine_chunks()
            if pa.types.is_floating(col.type):
                col = pc.cast(pc.round(col, 6), pa.string())
            elif not pa.types.is_boolean(col.type):
                col = pc.cast(col, pa.string())
            columns.append(col)
            types.append("BOOLEAN" if pa.types.is_boolean(col.type) else "VARCHAR")
        _write_csv(self.out_dir / rel, table.column_names, columns, types)

    def _corrupt(self, spec, fields: list[pa.Array]) -> list[str]:
        """Break a line the way real exports do; each kind is rejected by a strict CSV reader.
        ``fields`` hold the CSV text of the rows to break, one array per column."""
        values = [f.to_pylist() for f in fields]
        names = spec.column_names
        ts_cols = [i for i, c in enumerate(spec.columns) if c.type == "TIMESTAMP" and c.required]
        text_cols = [i for i, c in enumerate(spec.columns) if c.type == "VARCHAR" and c.name != spec.key]
        out = []
        for r in range(len(fields[0])):
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

    def defects_table(self) -> pa.Table:
        """Every defect of the files handed over so far."""
        self.flush()
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
