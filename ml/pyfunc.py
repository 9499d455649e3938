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
    """``mixin``'s body as ``class <name>(base())`` in the module whose globals are ``namespace``,
    built once. The methods go in the class itself, not a parent, as if it were written there:
    MLflow's ``PythonModel.__init_subclass__`` wraps a ``predict`` found in the class's own dict."""
    if name not in namespace:
        import pandas

        parent = base()
        # MLflow resolves predict's annotations (strings, ``from __future__ import annotations``)
        # in the module's globals when the class is created; ``pd`` is imported lazily there.
        namespace.setdefault("pd", pandas)
        body = {k: v for k, v in vars(mixin).items() if k not in ("__dict__", "__weakref__")}
        namespace[name] = type(parent)(
            name, (parent,), body | {"__module__": namespace["__name__"], "__qualname__": name}
        )
    return namespace[name]


def python_model() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel
