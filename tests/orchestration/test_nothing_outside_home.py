"""Runs write under C360_HOME only: not the user's home (MLflow telemetry, matplotlib's font
cache), not the working directory, and dbt's per-run target folders are pruned."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from orchestration.dbt import project

SCRIPT = textwrap.dedent(
    """
    # ml first, as every entry point of the platform imports it (or c360) before the libraries.
    from ml import registry

    import matplotlib.pyplot as plt
    import mlflow

    registry.use_experiment("home_only")
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    with mlflow.start_run():
        mlflow.log_metric("x", 1.0)
        mlflow.log_figure(figure, "plot.png")
    """
)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_an_mlflow_run_with_a_figure_writes_only_under_c360_home(tmp_path):
    user_home, cwd, c360_home = tmp_path / "user", tmp_path / "cwd", tmp_path / "c360"
    user_home.mkdir()
    cwd.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("C360_", "MLFLOW_", "MPLCONFIGDIR", "DBT_", "XDG_"))
    }
    env.update(HOME=str(user_home), C360_HOME=str(c360_home))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _files(user_home) == [] and _files(cwd) == []
    assert (c360_home / "mlflow").is_dir()
    assert (c360_home / "cache" / "matplotlib").is_dir()


def test_dbt_run_folders_are_kept_under_c360_home_and_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    runs = tmp_path / "dbt" / "runs"
    for i in range(project.KEEP_RUN_FOLDERS + 5):
        folder = runs / f"old-{i:02d}"
        folder.mkdir(parents=True)
        os.utime(folder, (1_000_000 + i, 1_000_000 + i))
    context = SimpleNamespace(
        op_execution_context=SimpleNamespace(op=SimpleNamespace(name="dbt_models")),
        run=SimpleNamespace(run_id="0123456789abcdef"),
    )
    target = project.run_target_path(context)
    assert target.parent == runs and target.name.startswith("dbt_models-01234567-")
    kept = sorted(p.name for p in runs.iterdir())
    # Room for the new folder: the oldest go, the newest stay.
    assert len(kept) == project.KEEP_RUN_FOLDERS - 1
    assert kept[0] == f"old-{6:02d}" and kept[-1] == f"old-{project.KEEP_RUN_FOLDERS + 4:02d}"
