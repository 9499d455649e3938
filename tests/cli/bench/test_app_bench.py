"""``c360 bench-app`` times every page of the insights app in headless Chromium: the tool runs
end to end against the demo platform and records a figure for every page (no timing thresholds
here; the figures go to BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.bench import app_pages as bench_app
from cli.main import main

CHROMIUM = Path("/usr/bin/chromium")


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return "needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium chromium-driver)"
    try:
        import playwright  # noqa: F401
        import streamlit  # noqa: F401
    except ImportError as exc:
        return f"needs the app's packages (streamlit, playwright): {exc}"
    return None


def test_page_paths_follow_the_sidebar_and_streamlit_urls(tmp_path):
    (tmp_path / "pages").mkdir()
    for name in ("10_Tenth.py", "2_Segments.py", "1_Overview.py", "helper.py"):
        (tmp_path / "pages" / name).write_text("")
    assert bench_app.page_paths(tmp_path) == [
        ("Home", ""),
        ("Overview", "Overview"),
        ("Segments", "Segments"),
        ("Tenth", "Tenth"),
    ]


def test_the_real_app_has_its_eight_pages_plus_home():
    names = [name for name, _ in bench_app.page_paths()]
    assert names[0] == "Home" and len(names) == 9 and {"Customer_lookup", "Campaigns"} <= set(names)


def test_over_budget_uses_the_warm_median_and_flags_unmeasured_pages():
    pages = [
        {"page": "fast", "cold_s": 5.0, "warm_median_s": 0.5},
        {"page": "slow", "cold_s": 1.0, "warm_median_s": 2.5},
        {"page": "cold_only", "cold_s": 3.0, "warm_median_s": None},
        {"page": "never", "cold_s": None, "warm_median_s": None},
    ]
    assert bench_app.over_budget(pages, 2.0) == ["slow", "cold_only", "never"]
    assert bench_app.median_or_none([3.0, 1.0, 2.0]) == 2.0 and bench_app.median_or_none([]) is None


def test_format_table_has_a_row_per_page():
    result = {
        "pages": [
            {"page": "Home", "cold_s": 4.2, "warm_s": [1.0, 1.2], "warm_median_s": 1.1, "shows": "data"},
            {
                "page": "Funnel",
                "cold_s": None,
                "warm_s": [],
                "warm_median_s": None,
                "shows": "nothing",
                "error": "Timeout",
            },
        ]
    }
    lines = bench_app.format_table(result).splitlines()
    assert lines[2] == "| Home | 4.20 | 1.10 | 1.00, 1.20 | data |"
    assert lines[3] == "| Funnel | — | — | — | nothing (Timeout) |"


def test_bench_app_refuses_a_home_without_warehouse(tmp_path):
    result = CliRunner().invoke(main, ["bench-app", "--home", str(tmp_path)])
    assert result.exit_code != 0 and "no warehouse" in result.output


@pytest.mark.browser
def test_bench_app_measures_every_page_of_the_demo_platform(demo_home, demo_copy, tmp_path):
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    # A private copy of the whole home: the browser tests export audiences into the shared demo
    # home, and a page opened while such an export holds DuckDB's write lock says "try again"
    # and never renders (a CI run lost the Campaigns page's cold visit to a 180 s timeout).
    home = demo_copy(*sorted(part.name for part in demo_home.iterdir()))
    output = tmp_path / "app_pages.json"
    # A process of its own: Playwright's sync API refuses to start where another sync Playwright
    # (the browser tests' session fixture) already runs an event loop.
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "c360"),
            "bench-app",
            "--home",
            str(home),
            "--repeats",
            "1",
            "--output",
            str(output),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    report = json.loads(output.read_text())
    for field in (
        "measured_at",
        "command",
        "warehouse",
        "load_avg_before",
        "load_avg_after",
        "repeats",
        "budget_s",
        "pages",
        "over_budget",
    ):
        assert field in report
    assert report["warehouse"]["customers"] > 0 and report["warehouse"]["bytes"] > 0
    assert [p["page"] for p in report["pages"]] == [name for name, _ in bench_app.page_paths()]
    for page in report["pages"]:
        assert page["error"] is None, page
        assert page["cold_s"] > 0 and len(page["warm_s"]) == 1 and page["warm_median_s"] > 0, page
        # The demo platform is fully built: every page draws its data, none says "not built yet".
        assert page["shows"] == "data", page
    for page in report["pages"]:
        assert f"| {page['page']} |" in result.stdout
