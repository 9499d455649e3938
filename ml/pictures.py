"""The pictures a business user looks at for each customer mart (matplotlib figures, no pyplot
state): RFM segment sizes and revenue, value per behaviour segment, funnel drop-off."""

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

FUNNEL_STEPS = [
    ("sessions", "visit"),
    ("product_view_sessions", "product view"),
    ("cart_sessions", "cart"),
    ("checkout_sessions", "checkout"),
    ("purchase_sessions", "purchase"),
]


def rfm_segments_figure(rfm: "pd.DataFrame") -> "Figure":
    """Customers and revenue per RFM segment (columns rfm_segment, customers, revenue)."""
    from matplotlib.figure import Figure

    rfm = rfm.sort_values("revenue", ascending=True)
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    customers_ax, revenue_ax = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(rfm))
    customers_ax.barh(y, rfm["customers"], color="#4472c4")
    customers_ax.set(
        yticks=y, yticklabels=rfm["rfm_segment"], xlabel="customers", title="Customers per RFM segment"
    )
    revenue_ax.barh(y, rfm["revenue"], color="#ed7d31")
    share = rfm["revenue"] / max(rfm["revenue"].sum(), 1e-9)
    for yi, value, s in zip(y, rfm["revenue"], share):
        revenue_ax.annotate(f"{s:.0%}", (value, yi), xytext=(3, 0), textcoords="offset points", va="center")
    revenue_ax.set(xlabel="revenue", title="Revenue per RFM segment (share of total)")
    return figure


def segment_value_figure(segments: "pd.DataFrame") -> "Figure":
    """Customers, revenue per customer and promotion share per behaviour segment (columns
    segment_name, customers, revenue_per_customer, promotion_sensitivity)."""
    from matplotlib.figure import Figure

    segments = segments.sort_values("customers", ascending=True)
    figure = Figure(figsize=(12, 1.5 + 0.5 * len(segments)), layout="constrained")
    axes = figure.subplots(1, 3, sharey=True)
    y = np.arange(len(segments))
    for ax, column, title, color in zip(
        axes,
        ("customers", "revenue_per_customer", "promotion_sensitivity"),
        ("Customers", "Revenue per customer", "Share of purchases with a promo"),
        ("#4472c4", "#ed7d31", "#70ad47"),
    ):
        ax.barh(y, segments[column], color=color)
        ax.set(title=title)
    axes[0].set(yticks=y, yticklabels=segments["segment_name"])
    return figure


def funnel_figure(funnel: "pd.DataFrame") -> "Figure":
    """Left: sessions reaching each funnel step, with the step-to-step drop-off. Right: overall
    conversion (purchase sessions / sessions) by RFM segment and channel."""
    from matplotlib.figure import Figure

    totals = [float(funnel[column].sum()) for column, _ in FUNNEL_STEPS]
    figure = Figure(figsize=(13, 5), layout="constrained")
    steps_ax, segment_ax = figure.subplots(1, 2, width_ratios=[1, 1.2])
    x = np.arange(len(totals))
    steps_ax.bar(x, totals, color="#4472c4")
    steps_ax.set_xticks(x, [label for _, label in FUNNEL_STEPS])
    for i in range(1, len(totals)):
        kept = totals[i] / totals[i - 1] if totals[i - 1] else 0.0
        steps_ax.annotate(
            f"{kept:.0%} kept", (i, totals[i]), xytext=(0, 4), textcoords="offset points", ha="center"
        )
    steps_ax.set(ylabel="sessions", title="Funnel: sessions reaching each step")
    by = funnel.groupby(["rfm_segment", "channel"])[["purchase_sessions", "sessions"]].sum()
    rates = (
        (by["purchase_sessions"] / by["sessions"])
        .unstack("channel")
        .fillna(0)
        .sort_values(by=by.index.get_level_values("channel").unique()[0])
    )
    y = np.arange(len(rates))
    height = 0.8 / max(len(rates.columns), 1)
    for j, channel in enumerate(rates.columns):
        segment_ax.barh(y + j * height, rates[channel], height=height, label=channel)
    segment_ax.set_yticks(y + height * (len(rates.columns) - 1) / 2, rates.index)
    segment_ax.set(xlabel="purchase sessions / sessions", title="Conversion by RFM segment and channel")
    segment_ax.xaxis.set_major_formatter("{x:.0%}")
    segment_ax.legend()
    return figure
