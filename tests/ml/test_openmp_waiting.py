"""scikit-learn's OpenMP threads must wait passively in every process the platform starts: on a
busy 2-core machine spinning threads starve each other (ml/__init__.py). libgomp reads
OMP_WAIT_POLICY once, when scikit-learn first loads it, so each entry package sets it before that."""

import os
import subprocess
import sys

import pytest

# A package's __init__ runs before any of its modules, so checking right after importing the bare
# package proves the policy is in place before any of them can load scikit-learn.
PROBE = "import os, {module}; print(os.environ.get('OMP_WAIT_POLICY'))"


def _policy_after_import(module: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["c360", "ml", "orchestration"])
def test_every_entry_package_makes_openmp_wait_passively_before_sklearn_loads(module):
    assert _policy_after_import(module) == "PASSIVE"


def test_a_policy_the_user_set_wins():
    assert _policy_after_import("ml", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
