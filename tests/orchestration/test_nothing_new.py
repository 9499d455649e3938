"""A daily run with no new landing file loads nothing and skips everything downstream; one new
file in one source rebuilds downstream as before (issue 20: the nothing-new daily run)."""

import shutil

import dagster as dg
import duckdb
import pytest

from c360.contracts import SOURCES
from cli.runner import materialize
from orchestration.automation.jobs import REFRESH_SELECTION
from orchestration.ingest.assets import BUILT_FROM_RAW, unchanged_since


def _skipped_steps(run_id: str) -> set[str]:
    events = dg.DagsterInstance.get().all_logs(run_id, of_type=dg.DagsterEventType.STEP_SKIPPED)
    return {e.dagster_event.step_key for e in events}


@pytest.fixture(scope="module")
def daily_runs(demo_copy):
    home = demo_copy("warehouse.duckdb", "mlflow", "landing", "keys", "dagster")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("C360_HOME", str(home))
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        # The demo build loaded every landing file and then built the marts: nothing is new, even
        # with old bytes sent again under a new name (an exporter re-sending a day).
        consent = home / "landing" / "marketing_consent"
        first = min(p for p in consent.iterdir() if p.suffix == ".csv")
        shutil.copy2(first, consent / "resent_under_a_new_name.csv")
        idle = materialize(REFRESH_SELECTION)
        idle_skipped = _skipped_steps(idle.run_id)
        # The run that built the marts failing afterwards (say, in a scoring step) makes the next
        # run with nothing new rebuild, so that the failed work is retried.
        instance = dg.DagsterInstance.get()
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            before_failure = unchanged_since(con, instance, home / "landing", list(SOURCES))
            build = instance.get_latest_materialization_event(BUILT_FROM_RAW).run_id
            instance.report_run_failed(instance.get_run_by_id(build), "a scoring step failed")
            after_failure = unchanged_since(con, instance, home / "landing", list(SOURCES))
        # One new file in one source.
        folder = home / "landing" / "marketing_consent"
        existing = min(p for p in folder.iterdir() if p.suffix == ".csv")
        header_and_two_rows = existing.read_bytes().splitlines(keepends=True)[:3]
        (folder / "zz_one_new_file.csv").write_bytes(b"".join(header_and_two_rows))
        one_new = materialize(REFRESH_SELECTION)
        one_new_skipped = _skipped_steps(one_new.run_id)
    return idle, idle_skipped, one_new, one_new_skipped, (before_failure, after_failure)


def test_a_daily_run_without_new_files_loads_nothing_and_skips_downstream(daily_runs):
    idle, skipped, _, _, _ = daily_runs
    assert idle.success and not idle.failures
    # No raw table, mart, score or report: every step after the ingest was skipped.
    assert idle.materialized == []
    # Dagster skipped the dbt build, the scoring of the daily job and the dbt docs (their raw
    # inputs were not materialized).
    assert {"dbt_models", "ml__recommendations", "reports__dbt_docs"} <= skipped, skipped


def test_one_new_file_in_one_source_rebuilds_downstream(daily_runs):
    _, _, one_new, skipped, _ = daily_runs
    assert one_new.success, one_new.failures
    assert "raw/marketing_consent" in one_new.materialized
    # The other sources had nothing new but still materialize, so dbt's step is not skipped.
    assert "raw/crm_customers" in one_new.materialized
    assert BUILT_FROM_RAW.to_user_string() in one_new.materialized
    assert not skipped, skipped


def test_a_failed_build_run_is_rebuilt_even_with_nothing_new(daily_runs):
    *_, (before_failure, after_failure) = daily_runs
    assert before_failure is not None  # nothing new: the ingest would skip
    assert after_failure is None  # the build's run failed: the ingest materializes, dbt reruns
