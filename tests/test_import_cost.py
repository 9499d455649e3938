"""Importing the definitions or the CLI must not import the heavy libraries.

``import orchestration.definitions`` is paid by every ``c360`` command, the Dagster code server
and each test that loads the definitions; with Great Expectations, MLflow and scikit-learn at
module level it took ~20 s of CPU before any step ran. They are imported inside the functions
that use them; this fails if someone puts one back at the top of a module on these paths.
"""

import subprocess
import sys

import pytest

HEAVY = ("great_expectations", "mlflow", "sklearn", "scipy", "matplotlib", "altair", "lifetimes", "pandas")


def modules_loaded_by(statement: str) -> set[str]:
    # A fresh interpreter: this test process has imported most of them already.
    probe = f"import sys\n{statement}\nprint(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "statement",
    ["import orchestration.definitions", "import cli.main"],
)
def test_heavy_libraries_are_imported_on_use(statement):
    assert modules_loaded_by(statement) == set()


def test_lazy_mlflow_classes_are_the_ones_pickles_name():
    # The pyfunc classes are built on first lookup; pickles refer to them by module path.
    statement = (
        "import pickle\nfrom ml import churn, clv, registry\nfrom ml.recommendations import models\n"
        "for module, name in ((churn, 'ChurnProbability'), (clv, 'CLVModel'),"
        " (models, 'RecommenderModel'), (registry, 'WarehouseTableSource')):\n"
        "    cls = getattr(module, name)\n"
        "    assert cls.__module__ == module.__name__ and cls.__qualname__ == name\n"
        "    assert pickle.loads(pickle.dumps(cls)) is cls is getattr(module, name)\n"
        "import mlflow.pyfunc\n"
        "assert issubclass(churn.ChurnProbability, mlflow.pyfunc.PythonModel)\n"
    )
    assert {"mlflow"} <= modules_loaded_by(statement)
