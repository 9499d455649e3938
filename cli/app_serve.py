"""``python -m cli.app_serve run app/Home.py ...``: Streamlit's own command line, started with
the app's heavy imports already done.

Streamlit imports a page's modules on the first script run, inside the first visitor's request:
pandas, altair and duckdb alone take 2-3 s on this machine (6-9 s under load), which made the
first page after `c360 app` the only one over the 2 s budget (6.0 s at 1M customers). Importing
them here, before the server starts, moves that cost to start-up, where nobody is waiting on a
page. The app's own modules (``app/queries.py`` and friends) are left to Streamlit, which
watches and reloads them.
"""

from __future__ import annotations

import altair  # noqa: F401  (imported for its side effect: sys.modules is warm)
import duckdb  # noqa: F401
import pandas  # noqa: F401
from streamlit.web.cli import main

import c360.settings  # noqa: F401

if __name__ == "__main__":
    # The same prog_name as `python -m streamlit`, so the server sees the same command line.
    main(prog_name="streamlit")
