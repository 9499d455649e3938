"""dbt in the run's own process, its parsed project kept between invocations.

A ``dbt`` subprocess pays its start-up before any SQL runs: ~3.3 s importing dbt, ~0.9 s
registering the adapter, ~2.1 s loading the partial-parse state, ~1.7 s writing artifacts and
exiting (9.4 s wall for 0.8 s of work, measured on the demo home). A run has three or four dbt
steps (the Python assets reading dbt models and read by dbt models split the graph), so the
daily run paid that three times. Here the first invocation of a process imports dbt and parses
the project once (``dbtRunner().invoke(["parse"])``, dbt's documented way to reuse objects); the
later ones reuse the parsed manifest, so they start in well under a second.

dagster-dbt reads a subprocess: ``DbtCliInvocation`` iterates the JSON log lines on its stdout
and turns them into Dagster events. ``InProcessDbt`` imitates the part of ``subprocess.Popen``
it uses (``args``, ``stdout``, ``wait``, ``returncode``, ``send_signal``), running
``dbtRunner`` in a thread whose event callback writes the same JSON lines dbt would print
(every event at info level and above, secrets scrubbed as dbt's JSON logger does), so the
materializations and check results, their metadata and the error handling are dagster-dbt's own.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from c360.settings import DBT_PROJECT_DIR
from orchestration.dbt.project import project_files

_END = object()

# Commands that run on a parsed project; any other (``parse`` above all) parses as it always did.
COMMANDS_READING_THE_MANIFEST = {
    "build",
    "run",
    "test",
    "seed",
    "snapshot",
    "compile",
    "docs",
    "ls",
    "list",
    "show",
    "run-operation",
    "source",
    "retry",
}

# One parsed manifest per process, for the project files, profile and environment it was parsed
# under (see ``_manifest_key``).
_manifests: dict[tuple, Any] = {}
_manifests_lock = threading.Lock()


def _project_files_signature(project_dir: Path) -> tuple:
    """Every file dbt parses, with its modification time: an edited model, macro, seed or test
    (a test that writes a fixture project, a developer's change under ``dagster dev``) makes the
    kept manifest stale."""
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in project_files(project_dir)))


def _manifest_key(args: Sequence[str], env: Mapping[str, str]) -> tuple | None:
    """What a parsed manifest depends on: the project's files, the profile and target (C360_*
    variables choose the target and the warehouse file, whose name is every node's database),
    and the dbt settings in the environment other than where this step writes. None for a command
    whose work is the parse itself (``dbt parse``) and one carrying its own ``--vars`` (parse with
    them, never reuse)."""
    command = next((a for a in args if not a.startswith("-")), None)
    if command not in COMMANDS_READING_THE_MANIFEST:
        return None
    if any(a == "--vars" or a.startswith("--vars=") for a in args):
        return None
    per_step = {"DBT_TARGET_PATH", "DBT_LOG_PATH"}
    settings = tuple(
        sorted((k, v) for k, v in env.items() if (k.startswith(("C360_", "DBT_")) and k not in per_step))
    )
    project_dir = Path(env.get("DBT_PROJECT_DIR") or DBT_PROJECT_DIR)
    return (str(project_dir), settings, _project_files_signature(project_dir))


class _EventLines:
    """The stdout of the imitated process: JSON lines (bytes) until dbt finishes."""

    def __init__(self) -> None:
        self._lines: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = False

    def put(self, line: bytes | object) -> None:
        self._lines.put(line)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self._lines.get()
            if line is _END:
                return
            yield line

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True


def _error_line(message: str) -> bytes:
    """A dbt error event as dbt's JSON log would print it (dagster-dbt collects these into the
    step's error)."""
    return (
        json.dumps({"info": {"level": "error", "msg": message, "name": "MainEncounteredError"}, "data": {}})
        + "\n"
    ).encode()


class InProcessDbt:
    """A dbt command run by ``dbtRunner`` in a thread of this process, seen as a subprocess."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.args = list(args)
        self.returncode: int | None = None
        self.stdout = _EventLines()
        # The thread dies with the process: an interrupted run does not wait for dbt.
        self._thread = threading.Thread(target=self._run, args=(dict(env),), name="dbt", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> int | None:
        self._thread.join(timeout)
        return self.returncode

    def send_signal(self, _signal) -> None:
        """Interrupt what dbt is running (dagster-dbt forwards a run's termination as SIGINT):
        DuckDB queries in flight are cancelled, and dbt stops with an error."""
        from dbt.adapters.factory import get_adapter_by_type

        try:
            adapter = get_adapter_by_type("duckdb")
        except KeyError:  # dbt has not registered it yet: nothing runs
            return
        adapter.cancel_open_connections()

    def _emit(self, msg) -> None:
        """dbt's event callback: the line dbt's JSON logger would print on stdout (info level
        and above, as on a subprocess's stdout; debug events stay in dbt.log)."""
        if msg.info.level == "debug":
            return
        from dbt_common.events.functions import msg_to_json
        from dbt_common.exceptions.base import env_secrets, scrub_secrets

        self.stdout.put((scrub_secrets(msg_to_json(msg), env_secrets()) + "\n").encode())

    def _run(self, env: dict[str, str]) -> None:
        # dbt reads its settings (target and log paths, project and profiles folders, log
        # format) from the environment when a command starts; the dbt step is the only thing
        # running in this process (the warehouse pool), so the step's environment is set for
        # the command and put back afterwards.
        env["DBT_QUIET"] = "true"  # the events reach stdout once, re-printed by dagster-dbt
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            from dbt.cli.main import dbtRunner

            from c360.settings import get_settings
            from orchestration.dbt.scheduling import longest_chain_first, wanted

            command = self.args[1:]
            # Which ready node a free dbt thread takes: on a first build the one with the longest
            # chain below it, else dbt's order (C360_DBT_LONGEST_CHAIN_FIRST forces either;
            # scheduling.py says why). Set before each command: a step may differ. The warehouse
            # is the profile's (C360_WAREHOUSE, else C360_HOME's), read from the step's environment.
            longest_chain_first(wanted(env, command, get_settings().warehouse))
            result = dbtRunner(manifest=_parsed_manifest(command, env), callbacks=[self._emit]).invoke(
                command
            )
            if result.exception is not None:
                self.stdout.put(_error_line(f"dbt failed: {result.exception}"))
            self.returncode = 0 if result.success else (2 if result.exception is not None else 1)
        except BaseException as exc:  # noqa: BLE001 (reported as dbt's error: never leave the reader waiting)
            self.stdout.put(_error_line(f"dbt failed in process: {exc!r}"))
            self.returncode = 2
        finally:
            _release_warehouse()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self.stdout.put(_END)


def _release_warehouse() -> None:
    """Close dbt-duckdb's database after the command. It keeps one DuckDB instance per process
    (opened with the profile's settings: memory limit, threads) for the next command, and DuckDB
    refuses a second connection to the same file with other settings: the Python assets that
    run next in this process (a connection of their own) would fail."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb never loaded in this process
        return
    with DuckDBConnectionManager._LOCK:
        environment, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
    if environment is not None:
        environment.close()


def _parsed_manifest(command: Sequence[str], env: Mapping[str, str]):
    """The project parsed once per process (and again when a file, the profile or the settings
    changed), or None to let dbt parse as part of the command (a failed parse shows its error
    there)."""
    key = _manifest_key(command, env)
    if key is None:
        return None
    with _manifests_lock:
        if key not in _manifests:
            from dbt.cli.main import dbtRunner

            # Parsed into this step's target folder: it reads the partial-parse state seeded
            # there and leaves the updated one (with manifest.json) beside the step's results.
            parsed = dbtRunner().invoke(["parse"])
            if not parsed.success:
                return None
            _manifests.clear()  # one project per process: an older parse is never used again
            _manifests[key] = parsed.result
        return _manifests[key]
