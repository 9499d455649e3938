"""The instance's event log (orchestration/event_log.py): Dagster's SQLite files, written with
commits that skip the fsync and the index kept open, still read by Dagster's own class and still
followed live by the Dagster UI's watcher."""

import sqlite3
import subprocess
import sys
import threading
import time

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from orchestration.event_log import MAX_ENGINES, KeptSqliteEventLogStorage


@dg.asset
def one():
    return 1


@dg.asset_check(asset=one)
def one_is_one() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _instance(tmp_path, monkeypatch) -> dg.DagsterInstance:
    from c360.settings import Settings
    from cli.runner import prepare_instance

    monkeypatch.setenv("C360_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    prepare_instance(Settings(home=tmp_path))
    return dg.DagsterInstance.get()


def test_a_run_is_stored_by_the_kept_storage_and_read_back_by_dagsters_own(tmp_path, monkeypatch):
    instance = _instance(tmp_path, monkeypatch)
    assert isinstance(instance.event_log_storage, KeptSqliteEventLogStorage)
    result = dg.materialize([one, one_is_one], instance=instance)
    assert result.success

    # The same files through Dagster's own class (as a Dagster UI without this module reads them).
    theirs = SqliteEventLogStorage(str(tmp_path / "dagster" / "history" / "runs"))
    ours = instance.event_log_storage.get_records_for_run(result.run_id, limit=1000).records
    assert [r.event_log_entry for r in theirs.get_records_for_run(result.run_id, limit=1000).records] == [
        r.event_log_entry for r in ours
    ]
    assert {r.event_log_entry.dagster_event_type for r in ours} >= {
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        dg.DagsterEventType.RUN_SUCCESS,
    }
    # The cross-run index (asset and check records) is written too.
    assert (
        theirs.get_latest_materialization_events([dg.AssetKey("one")])[dg.AssetKey("one")].run_id
        == result.run_id
    )
    check = dg.AssetCheckKey(dg.AssetKey("one"), "one_is_one")
    assert theirs.get_latest_asset_check_execution_by_key([check])[check].run_id == result.run_id


def test_commits_skip_the_fsync_on_every_file(tmp_path):
    storage = KeptSqliteEventLogStorage(str(tmp_path))
    for shard in ("index", "some-run"):
        with storage._connect(shard) as conn:
            # 1 = NORMAL (Dagster's own class leaves SQLite's default, 2 = FULL).
            assert conn.exec_driver_sql("pragma synchronous").scalar() == 1
            assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"


def test_a_watcher_sees_each_event_as_it_is_written(tmp_path):
    """The Dagster UI follows a run by watching its file change: a run's own file must get each
    event, not only its write-ahead log, while the writer is still running."""
    writer = KeptSqliteEventLogStorage(str(tmp_path))
    run_id = "0123456789abcdef0123456789abcdef"
    seen: list[str] = []
    got_both = threading.Event()

    def callback(entry, _cursor):
        seen.append(entry.user_message)
        if len(seen) == 2:
            got_both.set()

    watcher = SqliteEventLogStorage(str(tmp_path))
    # The run's file exists before the UI starts watching it.
    writer.store_event(_log_entry(run_id, "first"))
    watcher.watch(run_id, None, callback)
    try:
        time.sleep(0.5)
        writer.store_event(_log_entry(run_id, "second"))
        assert got_both.wait(15), f"the watcher saw {seen}"
    finally:
        watcher.end_watch(run_id, callback)
        watcher.dispose()
    assert seen == ["first", "second"]
    # Nothing left only in the write-ahead log: the file itself holds both.
    rows = sqlite3.connect(tmp_path / f"{run_id}.db").execute("select count(*) from event_logs").fetchone()
    assert rows == (2,)


def test_engines_are_bounded(tmp_path):
    storage = KeptSqliteEventLogStorage(str(tmp_path))
    for n in range(MAX_ENGINES + 5):
        storage.store_event(_log_entry(f"{n:032x}", "x"))
    assert len(storage._engines) == MAX_ENGINES


def test_our_dagster_yaml_is_kept_current_and_a_users_is_left_alone(tmp_path, monkeypatch):
    from c360.settings import Settings
    from cli.runner import dagster_yaml, prepare_instance

    # prepare_instance points the process at the home: restored after the test, or the session's
    # demo home (set once, by the first test that asks for it) would be this one for later tests.
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    config = tmp_path / "dagster" / "dagster.yaml"
    config.parent.mkdir(parents=True)
    wanted = dagster_yaml(tmp_path / "dagster")
    config.write_text(wanted.split("event_log_storage:")[0])  # ours, from before the change
    prepare_instance(Settings(home=tmp_path))
    assert config.read_text() == wanted

    # Ours, written for a home since moved: its event log folder follows the home.
    config.write_text(dagster_yaml(tmp_path / "elsewhere" / "dagster"))
    prepare_instance(Settings(home=tmp_path))
    assert config.read_text() == wanted

    config.write_text("telemetry:\n  enabled: false\n")  # a user's own
    prepare_instance(Settings(home=tmp_path))
    assert config.read_text() == "telemetry:\n  enabled: false\n"


def test_an_instance_opened_by_path_reads_its_own_runs(tmp_path, monkeypatch):
    """The bench (and any tool) opens a home's instance by path, with DAGSTER_HOME pointing
    elsewhere or unset: the event log must still be that home's."""
    instance = _instance(tmp_path, monkeypatch)
    run_id = dg.materialize([one, one_is_one], instance=instance).run_id
    instance.dispose()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "another"))
    opened = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
    try:
        assert opened.get_runs(limit=1)[0].run_id == run_id
        assert opened.get_run_step_stats(run_id)
    finally:
        opened.dispose()


def _log_entry(run_id: str, message: str):
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(
        error_info=None,
        level="INFO",
        user_message=message,
        run_id=run_id,
        timestamp=time.time(),
        step_key=None,
        job_name="job",
        dagster_event=None,
    )


def test_a_run_that_waits_for_the_warehouse_pool_lets_its_held_file_go(tmp_path, monkeypatch):
    """A `c360 run` holds the warehouse file between its steps (c360/warehouse.py). When another
    run's step gets the warehouse pool first, this run's claim fails: it lets the file go, or that
    step could not open it (DuckDB: one writing process per file)."""
    from c360 import warehouse
    from orchestration.resources import WAREHOUSE_POOL

    instance = _instance(tmp_path, monkeypatch)
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
    with warehouse.held():
        warehouse.connect().close()
        assert storage.claim_concurrency_slot(WAREHOUSE_POOL, "ours", "step_1").is_claimed
        storage.free_concurrency_slot_for_step("ours", "step_1")
        assert warehouse._hold.con is not None  # our own claims keep it
        assert storage.claim_concurrency_slot(WAREHOUSE_POOL, "theirs", "step_a").is_claimed
        assert not storage.claim_concurrency_slot(WAREHOUSE_POOL, "ours", "step_2").is_claimed
        assert warehouse._hold.con is None
        # Their step can open the file now.
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import duckdb; duckdb.connect({str(warehouse.get_settings().warehouse)!r}).close()",
            ],
            check=True,
        )
