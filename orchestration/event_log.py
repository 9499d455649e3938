"""The Dagster instance's event log: Dagster's SQLite storage, with its connections kept.

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine, opens the file, commits with a
full fsync and closes it again for every statement it runs: a run stores 800-900 events at 100k
customers (each dbt model, check and step, and the planned ones before the run starts), and an
asset event, a check or a pool slot writes to two files. On this 2-core machine that was 5-7 ms
per connection, tens of seconds per run, most of a daily run that has nothing new to load.

``KeptSqliteEventLogStorage`` sets ``synchronous=NORMAL``, SQLite's recommended setting in WAL mode
(Dagster's files are WAL): a commit reaches the WAL without an fsync, and the database stays
consistent through a crash; only the last commits before a power cut can be lost. It keeps one
open connection per file: the cross-run index (asset and check events, pool slots), which most
statements go to, and each run's own file. The Dagster UI follows a run in progress by watching
that run's file change, and a commit only reaches the WAL beside it: so each commit to a run's
file is followed by a passive checkpoint, which copies the WAL into the file as closing the
connection did (Dagster's own class opens and closes it around every statement). Storing the 899
events of a daily run at 100k customers again took 1.9-2.2 s against 2.5-3.0 s with the run's
file reopened each time. Everything else is Dagster's, and the files are the same: the Dagster UI
and daemon read them with this class or with Dagster's own.

Engines are kept per shard, at most ``MAX_ENGINES`` (least recently used closed first), so the
Dagster UI, which reads the files of many runs, does not accumulate them. A forked child
(Dagster's multiprocess executor can fork) starts with none rather than sharing its parent's
SQLite connections.
"""

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS

from c360 import warehouse
from orchestration.resources import WAREHOUSE_POOL

# Engines (open SQLite files) kept per process: a run writes to its own shard and the index.
MAX_ENGINES = 8


class KeptSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log storage with an engine kept per shard (see the module).
    ``base_dir`` is required, as for Dagster's class: c360's dagster.yaml names it."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        # Dagster's own builds its own class, not the subclass.
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.engine.Engine:
        # Called under Dagster's _db_lock (see _connect).
        if self._engines_pid != os.getpid():
            # A forked child: its parent's connections are not its own (close=False leaves
            # them to the parent).
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
        # One connection kept: every statement runs under Dagster's _db_lock (creating the
        # tables opens a second one for a moment, closed again on return).
        engine = db.create_engine(
            self.conn_string_for_shard(shard), connect_args=connect_args, pool_size=1, max_overflow=4
        )
        db.event.listen(engine, "connect", _set_synchronous_normal)
        self._engines[shard] = engine
        while len(self._engines) > MAX_ENGINES:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.Connection]:
        # As Dagster's own _connect (one thread at a time, the file made on first use), with the
        # engine kept instead of made and disposed around each statement.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME:
                    # The committed events into the run's file itself, for the UI's watcher.
                    conn.connection.dbapi_connection.execute("pragma wal_checkpoint(passive)")

    def claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None
    ):
        status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)
        if concurrency_key == WAREHOUSE_POOL and not status.is_claimed:
            # Another run's step has the warehouse: a `c360 run` in this process holding the
            # file between its steps (c360/warehouse.py) lets it go, or that step could not
            # open it. A no-op anywhere else (the Dagster UI, the daemon, their run workers).
            warehouse.let_go()
        return status

    def dispose(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().dispose()


def _set_synchronous_normal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # Dagster's _initdb asks for WAL on a new file while the pool's first connection is still
    # open, which SQLite ignores: the kept connection asks first.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
