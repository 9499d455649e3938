"""The one DbtProject of the platform, and how its manifest gets built."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dagster_dbt import DbtProject
from filelock import FileLock

from c360.settings import DBT_PROJECT_DIR, get_settings

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_env() -> None:
    """dbt runs with the project folder as working directory: give it absolute paths."""
    # Only C360_HOME is exported: the profile derives the warehouse from it unless the user set
    # C360_WAREHOUSE. Exporting a derived path would outlive a later change of C360_HOME.
    os.environ["C360_HOME"] = str(get_settings().home)


# Run folders kept under $C360_HOME/dbt/runs (each ~4 MB of compiled SQL and run results): enough
# to look into the last few runs, without one more folder per step for ever.
KEEP_RUN_FOLDERS = 20


def run_target_path(context) -> Path:
    """A fresh target folder for one dbt invocation, under C360_HOME (never in the checkout),
    seeded with this home's partial-parse state; the oldest folders beyond ``KEEP_RUN_FOLDERS``
    are removed."""
    runs = get_settings().dbt_runs
    runs.mkdir(parents=True, exist_ok=True)
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in folders[: max(len(folders) - KEEP_RUN_FOLDERS + 1, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    target = runs / f"{context.op_execution_context.op.name}-{context.run.run_id[:8]}-{os.getpid()}"
    seed_partial_parse(target)
    return target


PARTIAL_PARSE = "partial_parse.msgpack"


def seed_partial_parse(target: Path) -> None:
    """Give a new dbt target folder the newest partial-parse state an earlier invocation in this
    home left, so dbt re-reads only what changed instead of parsing the whole project.

    dagster-dbt seeds a run folder from the checkout's ``dbt_project/target``, but dbt rejects that
    state ("profile has changed"): its check includes the profile's connection info, i.e. the
    warehouse path under C360_HOME, and the checkout's state was parsed under whichever home ran
    ``prepare_manifest`` first. Every ``dbt build`` step then parsed all of the project again
    (5-10 s each at M under load). A state left by this home's own earlier runs has the same
    profile; dbt still checks every file's hash, the vars, env vars and the profile, and falls back
    to a full parse when anything it depends on differs, so reusing it is safe. dagster-dbt copies
    its own only when the folder has none."""
    settings = get_settings()
    candidates = [*settings.dbt_runs.glob(f"*/{PARTIAL_PARSE}"), settings.dbt_docs / PARTIAL_PARSE]
    dest = target / PARTIAL_PARSE
    newest = None
    for path in candidates:
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:  # pruned or never made
            continue
        if path != dest and (newest is None or mtime > newest[0]):
            newest = (mtime, path)
    if newest is None or dest.exists():
        return
    import msgpack

    try:
        state = msgpack.unpackb(newest[1].read_bytes(), raw=False, strict_map_key=False)
    # Pruned under us, or half-written by a running dbt: dbt parses in full, as before.
    except (OSError, ValueError, msgpack.exceptions.UnpackException):
        return
    # Nodes keep the absolute path of the checkout that parsed them, and dbt loads seeds from it:
    # a state made by another checkout sharing this home would read that checkout's files. (Making
    # dbt re-parse the seeds instead, as dagster-dbt does for its own state, costs most of the
    # gain: any changed file sends dbt through its whole post-parse processing.)
    roots = {node.get("root_path") for node in state.get("nodes", {}).values()} - {None}
    if roots != {str(DBT_PROJECT_DIR)}:
        return
    target.mkdir(parents=True, exist_ok=True)
    # Copy under a scratch name and rename: dbt never reads a half-written file.
    scratch = target / f".{PARTIAL_PARSE}.{os.getpid()}"
    shutil.copy2(newest[1], scratch)
    os.replace(scratch, dest)


# Where `make ui` serves the dbt docs site (loopback only).
DBT_DOCS_URL = "http://127.0.0.1:8580"


def project_files(project_dir: Path = DBT_PROJECT_DIR) -> list[Path]:
    """Every file dbt parses: the project file and the models, macros, seeds and tests."""
    files = [project_dir / "dbt_project.yml"]
    for folder in ("models", "macros", "seeds", "tests"):
        files += [p for p in (project_dir / folder).rglob("*") if p.is_file()]
    return files


def _manifest_is_stale() -> bool:
    """The manifest is older than a model, macro, seed, test or the project file."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(p.stat().st_mtime > built for p in project_files())


def prepare_manifest(force: bool = False) -> None:
    """Parse the dbt project in process (about 5 s) when the manifest is missing, older than
    the project's files, or forced, so a fresh clone (or an edited model) works without a
    manual `dbt parse`.

    Several processes import this at once (pytest-xdist workers, Dagster's run workers, a
    `dagster dev` next to a CLI run), so the check and the parse hold a file lock, and the
    parse writes into a scratch folder whose files are then renamed into place: a reader never
    sees a half-written manifest.json (the mtime check alone let a second process read one)."""
    target = dbt_project.manifest_path.parent
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target / ".parse.lock")):
        if not force and not _manifest_is_stale():
            return
        from dbt.cli.main import dbtRunner

        dbt_env()
        scratch = Path(tempfile.mkdtemp(prefix=".parse-", dir=target))
        try:
            partial = target / "partial_parse.msgpack"
            if partial.exists():  # keep partial parsing: only changed files are re-read
                shutil.copy2(partial, scratch / partial.name)
            result = dbtRunner().invoke(
                [
                    "parse",
                    "--project-dir",
                    str(DBT_PROJECT_DIR),
                    "--profiles-dir",
                    str(DBT_PROJECT_DIR),
                    "--target-path",
                    str(scratch),
                    "--quiet",
                ]
            )
            if not result.success:
                raise RuntimeError(f"dbt parse failed: {result.exception}")
            for produced in scratch.iterdir():
                if produced.is_file():
                    os.replace(produced, target / produced.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


dbt_project.prepare_if_dev()
prepare_manifest()
