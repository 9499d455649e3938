"""Browser-test fixtures: the three UIs (the insights app, Dagster's webserver, MLflow's UI) started
on free loopback ports against the shared ``demo_home`` platform, and a headless Debian Chromium
driven by Playwright. Every server is started here, waited for with a deadline, and killed at the
end of the session with its whole process group."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

# The same browser and flags as `c360 bench-app` (headless, no sandbox, nothing that calls home).
from cli.bench.app_pages import CHROMIUM, CHROMIUM_FLAGS, stop_process_group

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT = float(os.environ.get("C360_BROWSER_START_TIMEOUT", "240"))


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    reason = None
    if not CHROMIUM.exists():
        reason = "needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium chromium-driver)"
    else:
        try:
            import playwright  # noqa: F401
            import streamlit  # noqa: F401
        except ImportError as exc:
            reason = f"needs the app's packages (streamlit, playwright): {exc}"
    for item in items:
        if Path(str(item.fspath)).parent == here and item.get_closest_marker("browser") and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {START_TIMEOUT:.0f}s:\n{log.read_text()[-3000:]}")


@contextmanager
def server(name: str, command: list[str], health_path: str, env: dict, logs: Path):
    """Start a server in its own process group, wait for it, yield its base URL, kill the group."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    log = logs / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(base + health_path, proc, log, time.monotonic() + START_TIMEOUT)
        yield base
    finally:
        stop_process_group(proc)


@pytest.fixture(scope="session")
def server_env(demo_home) -> dict:
    env = {
        **os.environ,
        "C360_HOME": str(demo_home),
        "DAGSTER_HOME": str(demo_home / "dagster"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{demo_home / 'mlflow' / 'mlflow.db'}",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "C360_APP_USER": "browser-test",
    }
    env.pop("C360_WAREHOUSE", None)
    return env


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ui_logs")


@pytest.fixture(scope="session")
def screenshots(demo_home) -> Path:
    path = demo_home / "reports" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def app_url(server_env, server_logs):
    from cli.app import streamlit_command

    with server(
        "app", streamlit_command("127.0.0.1", "{port}"), "/_stcore/health", server_env, server_logs
    ) as url:
        yield url


@pytest.fixture(scope="session")
def dagster_url(server_env, server_logs):
    # The webserver alone, read-only: `dagster dev` would also start the daemon, whose running-by-
    # default schedules and sensors would write to the shared demo platform.
    command = [
        str(BIN / "dagster-webserver"),
        # Module and attribute named, not workspace.yaml: loading the module by autodiscovery fails
        # while orchestration/definitions.py holds several Definitions objects at module scope.
        "-m",
        "orchestration.definitions",
        "-a",
        "defs",
        "-h",
        "127.0.0.1",
        "-p",
        "{port}",
        "--read-only",
    ]
    with server("dagster", command, "/server_info", server_env, server_logs) as url:
        yield url


@pytest.fixture(scope="session")
def mlflow_url(server_env, server_logs, demo_home):
    command = [
        str(BIN / "mlflow"),
        "ui",
        "--backend-store-uri",
        server_env["MLFLOW_TRACKING_URI"],
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    with server("mlflow", command, "/health", server_env, server_logs) as url:
        yield url


def _static_site(name: str, folder: Path, server_env: dict, logs: Path):
    """The folder served as `make ui` serves the dbt docs and the Data Docs."""
    command = [
        sys.executable,
        "-m",
        "http.server",
        "{port}",
        "--bind",
        "127.0.0.1",
        "--directory",
        str(folder),
    ]
    return server(name, command, "/index.html", server_env, logs)


@pytest.fixture(scope="session")
def dbt_docs_url(server_env, server_logs, demo_home):
    from c360.settings import Settings

    with _static_site("dbt_docs", Settings(demo_home).dbt_docs, server_env, server_logs) as url:
        yield url


@pytest.fixture(scope="session")
def data_docs_url(server_env, server_logs, demo_home):
    from c360.settings import Settings

    with _static_site("data_docs", Settings(demo_home).data_docs_site, server_env, server_logs) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright gives every launch a new empty profile directory of its own.
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    yield tab
    context.close()
