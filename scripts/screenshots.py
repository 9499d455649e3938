"""Retake the README's screenshots (``docs/screenshots/*.png``) of a ``make demo`` home.

    C360_HOME=/path/to/home make screenshots
    .venv/bin/python scripts/screenshots.py --home /path/to/home [--out docs/screenshots] [--only app_overview]

Starts the insights app, Dagster's webserver and the MLflow UI on free loopback ports against the
home (read-only, the way the browser tests start them), opens each page in headless Debian
Chromium, waits until it has drawn its data, and saves a 1400x900 picture reduced to a 256-colour
palette (a quarter of the bytes, no visible change for these flat UIs). First-run dialogs are kept
from opening by setting the flags they store in localStorage before any page script runs, and the
script fails rather than save a picture with a dialog on it. Servers are killed with their whole
process group at the end. Run it by hand after a UI change; it is not part of ``make test``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from c360.settings import PROJECT_ROOT
from cli.app import streamlit_command
from cli.bench.app_pages import CHROMIUM, CHROMIUM_FLAGS, _free_port, stop_process_group

BIN = Path(sys.executable).parent
VIEWPORT = {"width": 1400, "height": 900}
START_TIMEOUT_S = 240
PAGE_TIMEOUT_MS = 180_000
# Dagster's "Join the Dagster community" dialog (useStateWithStorage('communityNux')); MLflow's
# assistant panel, which opens itself on the first visit, and its GenAI sidebar, the default
# (useLocalStorage keys end in _v<version>): the pictures are of model training.
FIRST_RUN_FLAGS = """
localStorage.setItem('communityNux', '"1"');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.workflowType_v1', '"machine_learning"');
"""
APP_RENDERED = '[data-testid="stApp"][data-test-script-state="notRunning"]'
APP_DATA = '[data-testid="stVegaLiteChart"] g.role-mark > *, [data-testid="stDataFrame"] canvas, [data-testid="stTable"]'


@dataclass(frozen=True)
class Shot:
    file: str
    server: str  # app, dagster or mlflow
    path: Callable[[dict], str]  # from the facts of the home (model run ids) to the url path
    ready: Callable  # (page) -> None, returns once the page shows what the picture is for
    settle_ms: int = 2500  # then wait: the UIs poll and animate, so "network idle" may never come


def app_ready(page) -> None:
    page.wait_for_selector(APP_RENDERED, timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(APP_DATA, timeout=PAGE_TIMEOUT_MS)


def text_ready(*texts: str):
    def ready(page) -> None:
        for text in texts:
            page.locator(f"text={text} >> visible=true").first.wait_for(timeout=PAGE_TIMEOUT_MS)

    return ready


SHOTS = [
    *(
        Shot(f"app_{name.lower()}.png", "app", lambda facts, name=name: f"/{name}", app_ready)
        for name in ("Overview", "Segments", "Risk_and_value", "Funnel", "Customer_lookup", "Audiences")
    ),
    Shot(
        "dagster_customer_360.png",
        "dagster",
        lambda facts: "/assets/marts/customer_360",
        text_ready("Columns"),
    ),
    Shot("mlflow_churn_champion.png", "mlflow", lambda facts: "/#/models/churn", text_ready("champion")),
    Shot(
        "mlflow_churn_run.png",
        "mlflow",
        lambda facts: f"/#/experiments/{facts['experiment_id']}/runs/{facts['run_id']}",
        text_ready("Datasets", "Registered models"),
        settle_ms=6000,  # the run page fills its side panel (child runs, prompts) last
    ),
]


def champion_run(home: Path) -> dict:
    """Experiment and run of ``churn@champion``: the run page the README shows."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(home), registry_uri=tracking_uri(home))
    version = client.get_model_version_by_alias("churn", "champion")
    return {"experiment_id": client.get_run(version.run_id).info.experiment_id, "run_id": version.run_id}


def tracking_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"


def server_commands(home: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (command with {port}, health path)."""
    return {
        "app": (streamlit_command("127.0.0.1", "{port}"), "/_stcore/health"),
        # The webserver alone and read-only: `dagster dev` would start the daemon, whose schedules
        # and sensors would write to the home.
        "dagster": (
            [str(BIN / "dagster-webserver"), "-m", "orchestration.definitions", "-a", "defs"]
            + ["-h", "127.0.0.1", "-p", "{port}", "--read-only"],
            "/server_info",
        ),
        "mlflow": (
            [str(BIN / "mlflow"), "ui", "--backend-store-uri", tracking_uri(home)]
            + ["--host", "127.0.0.1", "--port", "{port}"],
            "/health",
        ),
    }


@contextmanager
def server(name: str, command: list[str], health: str, env: dict, logs: Path) -> Iterator[str]:
    port = _free_port()
    log = logs / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in command],
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
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + health, timeout=5) as response:
                    if response.status < 500:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not answer within {START_TIMEOUT_S}s (log {log})")
            time.sleep(1)
        yield base
    finally:
        stop_process_group(proc)


def no_dialog(page, file: str) -> None:
    """Close any dialog the flags did not prevent (a new first-run dialog in a later version);
    fail if one is still there."""
    dialogs = page.locator('[role="dialog"] >> visible=true')
    for label in ("Skip", "Close", "Dismiss", "Got it"):
        if dialogs.count():
            buttons = dialogs.first.get_by_role("button", name=label)
            if buttons.count():
                buttons.first.click()
                page.wait_for_timeout(500)
    if dialogs.count():
        raise SystemExit(f"{file}: a dialog is still open: {dialogs.first.inner_text()[:200]!r}")


def save_reduced(png: bytes, target: Path) -> None:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def take(home: Path, out: Path, only: set[str]) -> list[Path]:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shots = [s for s in SHOTS if not only or Path(s.file).stem in only]
    if not shots:
        raise SystemExit(f"nothing to take: --only names none of {[Path(s.file).stem for s in SHOTS]}")
    facts = champion_run(home) if any(s.server == "mlflow" for s in shots) else {}
    env = {
        **os.environ,
        "C360_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MLFLOW_TRACKING_URI": tracking_uri(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "C360_APP_USER": "screenshots",
    }
    env.pop("C360_WAREHOUSE", None)
    logs = Path(tempfile.mkdtemp(prefix="c360-screenshots-"))  # server logs, outside the home
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with ExitStack() as stack, sync_playwright() as pw:
        commands = server_commands(home)
        bases = {
            name: stack.enter_context(server(name, *commands[name], env, logs))
            for name in sorted({s.server for s in shots})
        }
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            for shot in shots:
                context = browser.new_context(viewport=VIEWPORT)
                context.add_init_script(FIRST_RUN_FLAGS)
                page = context.new_page()
                page.goto(bases[shot.server] + shot.path(facts))
                try:
                    shot.ready(page)
                except PlaywrightError as exc:
                    page.screenshot(path=str(logs / shot.file))
                    raise SystemExit(
                        f"{shot.file}: {exc.message.splitlines()[0]} (what it showed: {logs / shot.file})"
                    )
                page.wait_for_timeout(shot.settle_ms)
                no_dialog(page, shot.file)
                target = out / shot.file
                save_reduced(page.screenshot(), target)
                saved.append(target)
                print(f"{target}  ({target.stat().st_size // 1024} KiB)")
                context.close()
        finally:
            browser.close()
    return saved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("C360_HOME", ".c360")))
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "screenshots")
    parser.add_argument("--only", action="append", default=[], help="a picture's name (repeatable)")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if not (home / "warehouse.duckdb").exists():
        raise SystemExit(f"{home} has no warehouse.duckdb: build a home first (C360_HOME={home} make demo)")
    if not CHROMIUM.exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    take(home, args.out.resolve(), set(args.only))


if __name__ == "__main__":
    main()
