"""A `c360 run` with a quality gate imports Great Expectations in a thread as it starts, and the
import really happens there."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from cli import warm_imports
from cli.bench.core import DAILY_SELECTION


@pytest.fixture(scope="module")
def job_for():
    from orchestration.definitions import defs

    def resolve(selection):
        return dg.Definitions(
            assets=list(defs.assets or []),
            asset_checks=list(defs.asset_checks or []),
            resources=defs.resources,
            jobs=[dg.define_asset_job("warm", selection=selection)],
        ).resolve_job_def("warm")

    return resolve


def test_great_expectations_only_for_a_run_with_a_quality_gate(job_for):
    assert warm_imports.modules_for(job_for(DAILY_SELECTION)) == ["great_expectations"]
    # An ingest runs its quality gate; a dbt model or the segments alone have none.
    assert warm_imports.modules_for(job_for("key:raw/products")) == ["great_expectations"]
    assert warm_imports.modules_for(job_for("key:marts/customer_rfm")) == []
    assert warm_imports.modules_for(job_for("key:marts/customer_segments")) == []


def test_the_thread_imports_them_and_a_failing_one_is_left_to_the_step():
    # A fresh interpreter: in this one the test session has imported them already.
    code = (
        "import sys\n"
        "from cli import warm_imports\n"
        "assert 'colorsys' not in sys.modules\n"
        "thread = warm_imports.start(['no_such_module_c360', 'colorsys'])\n"
        "assert thread.daemon\n"
        "thread.join()\n"
        "assert 'colorsys' in sys.modules\n"
        "assert warm_imports.start([]) is None\n"
    )
    project_root = Path(warm_imports.__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=project_root)
