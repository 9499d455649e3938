"""Issue 18, ingest: the file-at-a-time loader (before) against the set-based one (after), side by
side in one process on the same generated landing and machine load.

    .venv/bin/python benchmarks/issue18_ingest.py [--customers 30000] [--landing DIR] [--before COMMIT]

"Before" is ``c360/ingest/`` as of ``--before`` (read with ``git show`` into a temporary
package), "after" the working tree's. Both load every source, in the order the demo does, into
a fresh warehouse each, with the same keys, clock and run id. Per source: wall and CPU seconds
(``time.process_time``, which counts DuckDB's threads too) and rows/s; the load average
(``os.getloadavg``) before and after each loader. Then raw, the quarantine and the load log are
compared table by table: row counts and an order-independent checksum, AES-GCM tokens
decrypted first (their nonces are random, so the ciphertexts differ by design).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb
import pyarrow as pa

from c360.contracts import SOURCES
from c360.ingest import loader as after
from c360.privacy import crypto
from c360.privacy.keys import Keyring

FIRST = ("products", "crm_customers", "ecommerce_orders", "ecommerce_order_items")
THEN = ("web_events", "pos_transactions", "service_tickets", "product_reviews", "marketing_consent")
NOW = datetime(2026, 10, 1)
RUN_ID = "bench18"
MODULES = ("encoding", "protect", "loader")


def load_before(commit: str):
    """``c360/ingest`` at ``commit`` as package ``c360_ingest_before`` in a temp folder."""
    folder = Path(tempfile.mkdtemp()) / "c360_ingest_before"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in MODULES:
        source = subprocess.run(
            ["git", "show", f"{commit}:c360/ingest/{name}.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        source = re.sub(r"from c360\.ingest import", "from c360_ingest_before import", source)
        (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("c360_ingest_before.loader")


def run(module, landing: Path, warehouse: Path, keyring: Keyring, scratch: Path) -> dict:
    con = duckdb.connect(str(warehouse))
    out = {"load_before": os.getloadavg()[0], "sources": {}}
    total_cpu, total_wall = time.process_time(), time.perf_counter()
    for group in (FIRST, THEN):
        for source in group:
            cpu, wall = time.process_time(), time.perf_counter()
            loads, errors = module.load_source(
                con, source, landing, keyring, RUN_ID, NOW, scratch_root=scratch
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            rows = sum(l.rows_in for l in loads)
            out["sources"][source] = {
                "files": len(loads),
                "rows_in": rows,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "rows_per_s": round(rows / wall) if wall else None,
                "errors": len(errors),
                "conserved": all(l.conserved for l in loads),
            }
        if group is FIRST:
            module.quarantine_duplicate_orders(con, RUN_ID, NOW)
    out["wall_s"] = round(time.perf_counter() - total_wall, 2)
    out["cpu_s"] = round(time.process_time() - total_cpu, 2)
    out["load_after"] = os.getloadavg()[0]
    con.close()
    return out


def _digest(con, table: str, exclude: list[str]) -> tuple[int, int]:
    cols = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema || '.' || table_name = ? "
            "order by ordinal_position",
            [table],
        ).fetchall()
        if r[0] not in exclude
    ]
    pack = ", ".join(f'"{c}" := "{c}"' for c in cols)
    rows, digest = con.execute(
        f"select count(*), coalesce(sum(hash(struct_pack({pack}))::hugeint), 0) from {table}"
    ).fetchone()
    return rows, int(digest)


def _plain_digest(values: list[tuple]) -> int:
    """Order-independent checksum of decrypted (key, value) pairs."""
    con = duckdb.connect()
    pairs = pa.table({"k": [str(k) for k, _ in values], "v": pa.array([v for _, v in values], pa.string())})
    con.register("pairs", pairs)
    return int(con.execute("select coalesce(sum(hash(k, v)::hugeint), 0) from pairs").fetchone()[0])


def contents(warehouse: Path, keyring: Keyring) -> dict:
    """Per table: rows and checksum; tokens decrypted and checksummed apart."""
    con = duckdb.connect(str(warehouse), read_only=True)
    out = {}
    for source in SOURCES.values():
        enc = [c.name for c in source.columns if c.encrypted]
        out[f"raw.{source.name}"] = _digest(con, f"raw.{source.name}", [f"{c}_enc" for c in enc])
        for col in enc:
            rows = con.execute(
                f'select cast("{source.key}" as varchar), "{col}_enc" from raw.{source.name} '
                f'where "{col}_enc" is not null'
            ).fetchall()
            aads = [f"{source.name}|{k}|{col}" for k, _ in rows]
            plain = crypto.decrypt_column([t for _, t in rows], aads, keyring).to_pylist()
            out[f"raw.{source.name}.{col}_enc (decrypted)"] = (
                len(rows),
                _plain_digest(list(zip([k for k, _ in rows], plain, strict=True))),
            )
    out["quality.quarantine"] = _digest(con, "quality.quarantine", ["raw"])
    rows = con.execute("select source, source_file, record_id, raw from quality.quarantine").fetchall()
    plain = []
    for source, file, record, raw in rows:
        if raw and raw.startswith("aesgcm:"):
            raw = crypto.decrypt(raw[len("aesgcm:") :], f"{source}|{record}", keyring)
        plain.append((f"{source}|{file}|{record}", raw))
    out["quality.quarantine.raw (decrypted)"] = (len(plain), _plain_digest(plain))
    out["raw._load_log"] = _digest(con, "raw._load_log", [])
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=30000)
    parser.add_argument("--landing", type=Path, help="a landing folder already generated")
    parser.add_argument("--before", default="fc743af")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench18-"))
    landing = args.landing
    if landing is None:
        landing = work / "landing"
        from c360.generate import generate

        generate(landing, customers=args.customers, seed=42, progress=False)
    before = load_before(args.before)
    keyring = Keyring.generate()
    print("uptime:", subprocess.run(["uptime"], check=True, capture_output=True, text=True).stdout.strip())
    results, tables = {}, {}
    for label, module in (("before", before), ("after", after)):
        warehouse = work / f"{label}.duckdb"
        results[label] = run(module, landing, warehouse, keyring, work / f"scratch-{label}")
        tables[label] = contents(warehouse, keyring)
        print(f"{label}: {results[label]['wall_s']} s wall, {results[label]['cpu_s']} s CPU", flush=True)
    print("uptime:", subprocess.run(["uptime"], check=True, capture_output=True, text=True).stdout.strip())

    print(
        f"\n{'source':24} {'rows':>9} {'before wall/cpu s':>18} {'after wall/cpu s':>18} {'rows/s before':>14} {'after':>10}"
    )
    for source in FIRST + THEN:
        b, a = results["before"]["sources"][source], results["after"]["sources"][source]
        print(
            f"{source:24} {b['rows_in']:>9} {b['wall_s']:>9}/{b['cpu_s']:<8} {a['wall_s']:>9}/{a['cpu_s']:<8} "
            f"{b['rows_per_s']:>14} {a['rows_per_s']:>10}"
        )
    for label in ("before", "after"):
        r = results[label]
        print(
            f"{label}: total {r['wall_s']} s wall, {r['cpu_s']} s CPU, load {r['load_before']:.2f} -> {r['load_after']:.2f}"
        )
    same = {t: tables["before"][t] == tables["after"][t] for t in tables["before"]}
    print("\nidentical contents (rows, checksum):")
    for table, ok in same.items():
        print(
            f"  {table:52} {tables['after'][table][0]:>9} rows  {'same' if ok else 'DIFFERENT ' + str(tables['before'][table])}"
        )
    if args.json:
        args.json.write_text(json.dumps({"results": results, "tables": tables, "identical": same}, indent=1))
    if not all(same.values()):
        sys.exit("contents differ between before and after")


if __name__ == "__main__":
    main()
