"""MLflow classes built on first use, so importing an ``ml`` module does not import MLflow.

``import mlflow.pyfunc`` takes ~5 s of CPU; every ``c360`` command, the Dagster code server and
each test importing the definitions paid it at start before any model was touched. A module keeps
its class body as a plain mixin and builds the MLflow subclass from it when the name is first
looked up (module ``__getattr__``); the class is then stored under that name in the module, so
pickles (``ml.churn.ChurnProbability``) resolve to the same class as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def lazy_subclass(namespace: dict[str, Any], name: str, mixin: type, base: Callable[[], type]) -> type:
    """``class <name>(mixin, base())`` in the module whose globals are ``namespace``, built once."""
    if name not in namespace:
        parent = base()
        cls = type(parent)(
            name,
            (mixin, parent),
            {"__module__": namespace["__name__"], "__qualname__": name, "__doc__": mixin.__doc__},
        )
        namespace[name] = cls
    return namespace[name]


def python_model() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel
