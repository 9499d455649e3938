"""The data scientists' notebook runs headless (nbclient, a real IPython kernel) against a copy of
the demo platform: it scores customers with the champion churn model exactly as ``ml.churn_scores``
holds them, recommends products for each, draws its plot, prints no plaintext personal data and
writes nothing into the home it reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from c360.settings import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "churn_and_recommendations.ipynb"


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``root``: content digest (or "dir") and modification time."""
    return {
        str(path.relative_to(root)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir",
            path.stat().st_mtime_ns,
        )
        for path in sorted(root.rglob("*"))
    }


def summary_rows(stdout: str) -> list[tuple[str, float, str, str]]:
    """(customer_id, churn_probability, risk_band, top_products) of the last cell's table."""
    header, *lines = [line.split() for line in stdout.strip().splitlines()]
    assert header == ["customer_id", "churn_probability", "risk_band", "top_products"], header
    return [(cid, float(p), band, products) for cid, p, band, products in lines]


@pytest.fixture(scope="module")
def executed(demo_copy, tmp_path_factory):
    import nbformat
    from nbclient import NotebookClient

    # A private copy of what the notebook reads, so that "writes nothing" can be checked without
    # racing the other tests that share the demo home.
    home = demo_copy()
    before = fingerprint(home)

    workdir = tmp_path_factory.mktemp("notebook_run")
    patch = pytest.MonkeyPatch()
    # The kernel inherits this environment; matplotlib's cache would otherwise go under C360_HOME.
    patch.setenv("C360_HOME", str(home))
    patch.setenv("MPLCONFIGDIR", str(workdir / "matplotlib"))
    # Importing streamlit (the app's tests, in the same worker) sets MPLBACKEND=Agg for the whole
    # process; a kernel inheriting it would draw no inline picture, as Jupyter itself does.
    for var in ("MLFLOW_TRACKING_URI", "C360_WAREHOUSE", "C360_MLFLOW_ARTIFACTS", "MPLBACKEND"):
        patch.delenv(var, raising=False)
    try:
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        ).execute()
    finally:
        patch.undo()
    out = workdir / "executed.ipynb"
    nbformat.write(notebook, out)
    return {"notebook": notebook, "path": out, "home": home, "before": before}


def test_notebook_scores_customers_as_the_churn_scores_table_holds_them(executed):
    last = [cell for cell in executed["notebook"].cells if cell.cell_type == "code"][-1]
    stdout = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream")
    rows = summary_rows(stdout)
    assert len(rows) == 5
    assert all(0.0 <= p <= 1.0 for _, p, _, _ in rows)
    con = duckdb.connect(str(executed["home"] / "warehouse.duckdb"), read_only=True)
    try:
        stored = dict(
            con.execute(
                "select customer_id, churn_probability from ml.churn_scores where customer_id in (select unnest(?))",
                [[cid for cid, *_ in rows]],
            ).fetchall()
        )
    finally:
        con.close()
    for cid, p, band, products in rows:
        assert stored[cid] == pytest.approx(p, abs=1e-6), cid
        assert band in {"high", "medium", "low"}
        assert products != "NaN" and len(products.split(",")) == 3, (cid, products)
    # Most at risk first.
    probabilities = [p for _, p, _, _ in rows]
    assert probabilities == sorted(probabilities, reverse=True)


def test_notebook_draws_its_plot(executed):
    images = [
        o
        for cell in executed["notebook"].cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 1


def test_notebook_prints_no_plaintext_personal_data(executed):
    from c360.privacy.scan import scan_file

    assert scan_file(executed["path"]) == []
    code = "\n".join(cell.source for cell in executed["notebook"].cells if cell.cell_type == "code")
    # Profiles come through the masked analytics views, and no contact column is shown even masked.
    assert "analytics.customers" in code and "marts." not in code
    outputs = json.dumps([cell.get("outputs", []) for cell in executed["notebook"].cells])
    assert "email" not in outputs and "phone" not in outputs


def test_notebook_writes_nothing_into_the_home_it_reads(executed):
    assert fingerprint(executed["home"]) == executed["before"]
