"""Dagster definitions of the platform: assets, checks, jobs, schedules and resources by domain."""

import os

# Before anything loads scikit-learn's libgomp: its threads wait passively instead of spinning
# (a churn fit on a busy 2-core machine: 47 s spinning, 9 s passive). Why, in ml/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
