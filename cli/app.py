"""``c360 app``: the customer-insights Streamlit app (``app/``) on the warehouse, read-only."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from c360.settings import PROJECT_ROOT, get_settings

APP_SCRIPT = PROJECT_ROOT / "app" / "Home.py"


def streamlit_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cli.app_serve",  # Streamlit's CLI with the heavy imports done first (see there)
        "run",
        str(APP_SCRIPT),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


@click.command("app", help="Start the customer-insights app (Streamlit) on http://127.0.0.1:8501.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8501, show_default=True, type=int, help="Port to listen on.")
def app_command(host: str, port: int) -> None:
    settings = get_settings()
    env = {**os.environ, "C360_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home)}
    click.echo(f"Customer 360 insights: http://{host}:{port}  (warehouse {settings.warehouse}, read-only)")
    sys.exit(subprocess.call(streamlit_command(host, port), cwd=PROJECT_ROOT, env=env))
