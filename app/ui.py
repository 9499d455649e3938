"""Page furniture shared by every page: configuration, the warehouse stamp, and the friendly
messages for a table not built yet or a warehouse busy with a writer."""

from __future__ import annotations

from contextlib import contextmanager

import altair as alt
import pandas as pd
import queries
import streamlit as st


def page(title: str, caption: str) -> tuple[str, float] | None:
    """Set up the page and return the warehouse stamp, or None (with a message) if unreadable."""
    st.set_page_config(page_title=f"{title} · Customer 360", layout="wide")
    st.title(title)
    st.caption(caption)
    try:
        stamp = queries.stamp()
        queries.catalogue(stamp)
    except queries.WarehouseUnavailable as exc:
        st.warning(str(exc))
        return None
    return stamp


def missing(stamp: tuple[str, float], *tables: str) -> list[str]:
    available = queries.catalogue(stamp)
    return [t for t in tables if t not in available]


def require(stamp: tuple[str, float], *tables: str, what: str = "This section") -> bool:
    """True if every table exists; otherwise says which are not built yet."""
    absent = missing(stamp, *tables)
    if absent:
        st.info(
            f"{what} is not built yet: waiting for {', '.join(f'`{t}`' for t in absent)}. "
            "It appears after the pipeline builds it (`c360 run`)."
        )
    return not absent


@contextmanager
def section(what: str):
    """Show a message instead of crashing when a query meets a missing table or a busy warehouse."""
    try:
        yield
    except queries.TableMissing as exc:
        st.info(f"{what} is not built yet ({exc}).")
    except queries.WarehouseUnavailable as exc:
        st.warning(str(exc))


def bar(
    frame: pd.DataFrame, x: str, y: str, color: str | None = None, horizontal: bool = False, title: str = ""
):
    enc_x, enc_y = (
        (alt.X(y, title=y), alt.Y(x, sort="-x", title=None))
        if horizontal
        else (alt.X(x, sort=None), alt.Y(y))
    )
    chart = (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(x=enc_x, y=enc_y, tooltip=list(frame.columns), **({"color": color} if color else {}))
    )
    st.altair_chart(chart, width="stretch")


def table(frame: pd.DataFrame, **kwargs) -> None:
    st.dataframe(queries.drop_sensitive(frame), hide_index=True, width="stretch", **kwargs)
