"""``c360 bench-app``: how long every page of the customer-insights app takes to render.

The app is started the way ``c360 app`` starts it (Streamlit, read-only on the warehouse) on a
free loopback port, and every page is opened in headless Debian Chromium driven by Playwright.
A page counts as rendered when its script has finished (``data-test-script-state`` is
``notRunning``), every chart on it has been drawn, and it shows a chart or table, or says which
table is "not built yet". The time is the browser's own clock from the navigation start
(``performance.now()`` in the new document), so the figures include the Streamlit session set-up,
the script run with its DuckDB queries, and drawing in the browser.

Cold is the first visit to each page after the app started (pages in sidebar order, so caches
the pages share, such as the catalogue, are warm after the first). Warm is the median of repeat
visits. Results go to ``$C360_HOME/reports/app_pages.json`` and a table on stdout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click

from c360.settings import PROJECT_ROOT

APP_DIR = PROJECT_ROOT / "app"
CHROMIUM = Path("/usr/bin/chromium")
# Headless, no sandbox (containers), nothing that calls home; the browser tests use these too.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BUDGET_S = 2.0  # issue 12: every page under 2 s on the L-scale warehouse
START_TIMEOUT_S = 240.0
PAGE_TIMEOUT_S = 180.0

# Evaluated in the page (every 50 ms) until it returns a result. Rendered means: the script has
# finished, every chart and data grid on the page is drawn, nothing is still loading, and the page
# shows a chart or table or says "not built yet". Streamlit mounts some elements (the data grid)
# lazily after the script state flips, so the page must also stay the same for SETTLE_MS; the time
# reported is when it last changed, not when the settling ended.
SETTLE_MS = 300
RENDERED_JS = """
() => {
  const w = window.__c360_bench || (window.__c360_bench = {sig: null, at: 0});
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') { w.sig = null; return false; }
  const now = performance.now();
  if (document.querySelector('[data-testid="stException"]')) return {ms: now, shows: 'exception'};
  // Visible elements only: a grid inside a collapsed expander is never drawn.
  const all = s => [...document.querySelectorAll(s)].filter(e => e.checkVisibility());
  const charts = all('[data-testid="stVegaLiteChart"]');
  const grids = all('[data-testid="stDataFrame"]');
  const tables = all('[data-testid="stTable"]').length;
  const pending = charts.filter(c => !c.querySelector('svg, canvas')).length
    + grids.filter(g => !g.querySelector('canvas')).length
    + all('[data-testid="stSkeleton"]').length;
  const notice = document.body.innerText.includes('not built yet');
  if (pending || !(charts.length || grids.length || tables || notice)) { w.sig = null; return false; }
  const sig = [charts.length, grids.length, tables, notice,
               all('[data-testid="stElementContainer"]').length].join();
  if (sig !== w.sig) { w.sig = sig; w.at = now; return false; }
  if (now - w.at < SETTLE_MS) return false;
  return {ms: w.at, shows: (charts.length || grids.length || tables) ? 'data' : 'not built yet'};
}
""".replace("SETTLE_MS", str(SETTLE_MS))


def page_paths(app_dir: Path = APP_DIR) -> list[tuple[str, str]]:
    """(name, url path) of every page in sidebar order: Home first, then ``pages/N_Name.py``
    by number, at the url path Streamlit gives it (the file name without the number)."""
    pages = [("Home", "")]
    numbered = []
    for file in (app_dir / "pages").glob("*.py"):
        match = re.fullmatch(r"(\d+)_(.+)\.py", file.name)
        if match:
            numbered.append((int(match.group(1)), match.group(2)))
    pages += [(name, name) for _, name in sorted(numbered)]
    return pages


def median_or_none(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def over_budget(pages: list[dict], budget_s: float = BUDGET_S) -> list[str]:
    """Pages whose warm median (or cold time, if never warm-measured) is over the budget."""
    out = []
    for p in pages:
        figure = p["warm_median_s"] if p["warm_median_s"] is not None else p["cold_s"]
        if figure is None or figure > budget_s:
            out.append(p["page"])
    return out


def format_table(result: dict) -> str:
    """The per-page table printed to stdout (and easy to paste into BENCHMARKS.md)."""

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    lines = [
        "| page | cold (s) | warm median (s) | warm runs (s) | shows |",
        "|---|---:|---:|---|---|",
    ]
    for p in result["pages"]:
        runs = ", ".join(f"{v:.2f}" for v in p["warm_s"]) or "—"
        shows = p["shows"] + (f" ({p['error']})" if p.get("error") else "")
        lines.append(f"| {p['page']} | {cell(p['cold_s'])} | {cell(p['warm_median_s'])} | {runs} | {shows} |")
    return "\n".join(lines)


def warehouse_facts(warehouse: Path) -> dict:
    """Size on disk and customer count, read-only (None where the table is not built)."""
    import duckdb

    facts: dict = {"path": str(warehouse), "bytes": warehouse.stat().st_size, "customers": None}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        facts["customers"] = con.execute("select count(*) from marts.customer_360").fetchall()[0][0]
    except duckdb.CatalogException:
        pass
    finally:
        con.close()
    return facts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(home: Path, log: Path):
    """The app on a free loopback port in its own process group; the whole group is killed after."""
    from cli.app import streamlit_command

    port = _free_port()
    env = {
        **os.environ,
        "C360_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "C360_APP_USER": "bench-app",
    }
    env.pop("C360_WAREHOUSE", None)  # the warehouse of --home, not one named elsewhere
    with log.open("w") as out:
        proc = subprocess.Popen(
            streamlit_command("127.0.0.1", port),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise click.ClickException(
                    f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"the app did not answer within {START_TIMEOUT_S:.0f}s (log {log})"
                )
            time.sleep(0.5)
        yield base
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True`` and everything it spawned: SIGTERM
    to its process group, SIGKILL if it is still there after 20 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def visit(tab, url: str) -> tuple[float | None, str, str | None]:
    """Open ``url`` and return (seconds to rendered, what it shows, error or None)."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        tab.goto(url, wait_until="commit")
        handle = tab.wait_for_function(RENDERED_JS, polling=50, timeout=PAGE_TIMEOUT_S * 1000)
        found = handle.json_value()
    except PlaywrightError as exc:
        return None, "nothing", str(exc).splitlines()[0][:200]
    if found["shows"] == "exception":
        text = tab.locator('[data-testid="stException"]').first.inner_text()[:200]
        return round(found["ms"] / 1000, 3), "exception", text
    return round(found["ms"] / 1000, 3), found["shows"], None


def measure(home: Path, repeats: int, log: Path) -> list[dict]:
    from playwright.sync_api import sync_playwright

    pages = [
        {"page": name, "path": path, "cold_s": None, "warm_s": [], "shows": "", "error": None}
        for name, path in page_paths()
    ]
    with running_app(home, log) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            # One browser context throughout, like one analyst's browser: every visit is a new
            # Streamlit session (a full page load), the static bundle comes from the browser cache.
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            tab = context.new_page()
            for p in pages:
                p["cold_s"], p["shows"], p["error"] = visit(tab, f"{base}/{p['path']}")
            for _ in range(repeats):
                for p in pages:
                    seconds, shows, error = visit(tab, f"{base}/{p['path']}")
                    if seconds is not None and error is None:
                        p["warm_s"].append(seconds)
                    p["error"] = p["error"] or error
                    p["shows"] = shows if shows != "nothing" else p["shows"]
            context.close()
        finally:
            browser.close()
    for p in pages:
        p["warm_median_s"] = median_or_none(p["warm_s"])
    return pages


def _exit_on_sigterm(signum, frame):
    # SystemExit unwinds the with-blocks, so a killed bench still kills the app's process group.
    raise SystemExit(128 + signum)


def run_bench(home: Path, repeats: int, output: Path) -> dict:
    warehouse = home / "warehouse.duckdb"
    if not warehouse.exists():
        raise click.ClickException(f"no warehouse at {warehouse}: build the platform first (`c360 run`).")
    if not CHROMIUM.exists():
        raise click.ClickException(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium).")
    if repeats < 1:
        raise click.ClickException("--repeats must be at least 1.")
    output.parent.mkdir(parents=True, exist_ok=True)
    facts = warehouse_facts(warehouse)
    load_before = os.getloadavg()
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        pages = measure(home, repeats, output.with_suffix(".app.log"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"c360 bench-app --home {home} --repeats {repeats} --output {output}",
        "home": str(home),
        "warehouse": facts,
        "cpu_count": os.cpu_count(),
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "repeats": repeats,
        "budget_s": BUDGET_S,
        "wall_s": round(time.monotonic() - started, 1),
        "pages": pages,
    }
    result["over_budget"] = over_budget(pages)
    output.write_text(json.dumps(result, indent=2) + "\n")
    return result


@click.command("bench-app")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The C360_HOME whose warehouse the app reads (read-only). Default: $C360_HOME.",
)
@click.option("--repeats", type=int, default=3, show_default=True, help="Warm visits per page.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Result JSON. Default: <home>/reports/app_pages.json.",
)
def bench_app_command(home: Path | None, repeats: int, output: Path | None) -> None:
    """Time every page of the insights app in headless Chromium: cold and warm render times."""
    from c360.settings import get_settings

    home = (home or get_settings().home).resolve()
    output = output or home / "reports" / "app_pages.json"
    result = run_bench(home, repeats, output)
    w = result["warehouse"]
    customers = "not built" if w["customers"] is None else f"{w['customers']:,}"
    click.echo(
        f"warehouse {w['path']}: {customers} customers, {w['bytes'] / 2**20:,.0f} MiB; "
        f"load avg {result['load_avg_before']} -> {result['load_avg_after']} on {result['cpu_count']} CPUs"
    )
    click.echo(format_table(result))
    slow = result["over_budget"]
    click.echo(f"over {BUDGET_S:g} s warm: {', '.join(slow) if slow else 'none'}")
    click.echo(f"written {output}")
