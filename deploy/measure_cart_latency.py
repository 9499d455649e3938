"""Measure cart-abandonment latency end to end: a web_events file dropped in the landing zone ->
the customer's row in activation.cart_abandoned, with the sensors running under `dagster dev`
(webserver + daemon) on a copy of a built C360_HOME.

    .venv/bin/python deploy/measure_cart_latency.py --home .c360 [--drops 3]

Prints one latency per dropped file and writes $COPY/reports/cart_latency.json. Nothing in the
given home is changed.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb

HEADER = "event_id,occurred_at,session_id,device_id,user_id,event_type,product_id,search_query,channel,order_id"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(warehouse: Path, sql: str, params=None):
    while True:
        try:
            con = duckdb.connect(str(warehouse), read_only=True)
            try:
                return con.execute(sql, params or []).fetchall()
            finally:
                con.close()
        except duckdb.IOException:
            time.sleep(0.2)  # a run holds the write lock


def _abandoner_file(warehouse: Path, folder: Path, n: int) -> tuple[Path, str]:
    latest = _query(warehouse, "select max(occurred_at) from raw.web_events")[0][0]
    device, customer = _query(
        warehouse,
        "select m.source_record_id, c.customer_id from marts.identity_map m join marts.customer_360 c "
        "using (customer_id) where m.source = 'web_events' and (c.consent_push or c.consent_email) "
        "order by c.customer_id limit 1 offset ?",
        [n],
    )[0]
    product = _query(warehouse, "select min(product_id) from raw.products")[0][0]
    t0 = latest + timedelta(minutes=30)
    fmt = "%Y-%m-%d %H:%M:%S"
    rows = [
        f"LAT{n}-1,{t0.strftime(fmt)},LS{n},{device},,add_to_cart,{product},,web,",
        f"LAT{n}-2,{(t0 + timedelta(minutes=12)).strftime(fmt)},LS{n},{device},,page_view,,,web,",
    ]
    tmp = folder.parent / f".web_events_latency_{n}.csv.part"
    tmp.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return tmp, customer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("C360_HOME", ".c360")))
    parser.add_argument("--drops", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="c360_latency_"))
    home = work / "home"
    shutil.copytree(args.home, home, ignore=shutil.ignore_patterns("dagster"))
    # The code server may run another interpreter than this one: dbt must be on its PATH.
    venv_bin = str(Path(sys.executable).parent)
    env = os.environ | {
        "C360_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "PATH": venv_bin + os.pathsep + os.environ["PATH"]
    }
    env.pop("C360_WAREHOUSE", None)
    subprocess.run([str(Path(sys.executable).parent / "c360"), "dagster-home"], env=env, check=True, capture_output=True)
    port = _free_port()
    log = open(work / "dagster_dev.log", "w")
    dev = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-m", "orchestration.definitions", "-a", "defs",
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=Path(__file__).resolve().parent.parent, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    warehouse = home / "warehouse.duckdb"
    folder = home / "landing" / "web_events"
    latencies = []
    try:
        # The daemon's first sensor tick shows the code location is loaded.
        deadline = time.monotonic() + args.timeout
        while "clickstream_sensor" not in (work / "dagster_dev.log").read_text():
            if time.monotonic() > deadline or dev.poll() is not None:
                raise SystemExit(f"dagster dev did not start; see {work / 'dagster_dev.log'}")
            time.sleep(1)
        time.sleep(20)  # let the first ticks settle (cursor initialised)
        for n in range(args.drops):
            tmp, customer = _abandoner_file(warehouse, folder, n)
            target = folder / f"web_events_latency_{n}.csv"
            dropped = time.time()
            tmp.rename(target)  # atomic drop, as the landing contract asks
            while True:
                rows = _query(
                    warehouse,
                    "select count(*) from information_schema.tables where table_schema = 'activation' "
                    "and table_name = 'cart_abandoned'",
                )[0][0] and _query(
                    warehouse,
                    "select count(*) from activation.cart_abandoned where customer_id = ? and as_of >= "
                    "(select max(occurred_at) from raw.web_events where _source_file = ?)",
                    [customer, f"web_events/{target.name}"],
                )[0][0]
                if rows:
                    break
                if time.time() - dropped > args.timeout:
                    raise SystemExit(f"no row after {args.timeout}s; see {work / 'dagster_dev.log'}")
                time.sleep(1)
            latencies.append(round(time.time() - dropped, 1))
            print(f"drop {n}: file landed -> row in activation.cart_abandoned in {latencies[-1]} s", flush=True)
    finally:
        os.killpg(dev.pid, 15)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, 9)
    report = {"latencies_s": latencies, "max_s": max(latencies), "home": str(home), "log": str(work / "dagster_dev.log")}
    (home / "reports").mkdir(exist_ok=True)
    (home / "reports" / "cart_latency.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
