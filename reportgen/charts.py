"""Chart builders: result dataclasses in, Altair charts out (DESIGN.md 1 and 4).

Every histogram is binned in Python and reaches the chart as records in `data.values`, so a
page carries a few hundred numbers rather than the states. Fine histograms are merged into at
most `MAX_BARS` bars for display; the exports keep every 0.01 bin. Non-finite numbers become
null, since JSON has no NaN. Nothing here writes a page: the site embeds `chart.to_dict()`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import altair as alt
import numpy as np

if TYPE_CHECKING:
    from reportgen.analysis.concepts import NeuronConcepts
    from reportgen.analysis.distributions import NeuronStats

MAX_BARS = 250  # 200 bins of h stay whole; a wide cell interval is merged down to this
WIDTH = 420
HEIGHT = 220
AVERAGE = "average"


def average_distribution_chart(stats: NeuronStats, max_bars: int = MAX_BARS) -> alt.Chart:
    """The layer's average distribution q as bars over the value axis."""
    records = binned_records(stats.edges, {AVERAGE: stats.average}, max_bars)
    chart = alt.Chart(alt.Data(values=records), title=f"{stats.name}: average distribution")
    return chart.mark_bar().encode(
        x=alt.X("start:Q", title="activation"),
        x2="end:Q",
        y=alt.Y("share:Q", title="share of values"),
        y2=alt.datum(0),  # without it a bar ranged in x is drawn as a thin tick at y
        tooltip=[
            alt.Tooltip("start:Q", format=".2f"),
            alt.Tooltip("end:Q", format=".2f"),
            alt.Tooltip("share:Q", format=".4f"),
        ],
    ).properties(width=WIDTH, height=HEIGHT)


def neuron_histogram_chart(stats: NeuronStats, neuron: int, max_bars: int = MAX_BARS) -> alt.Chart:
    """One neuron's distribution drawn over the layer's average, as overlapping translucent bars."""
    # the average first, so the neuron's bars are drawn on top of it
    series = {AVERAGE: stats.average, f"neuron {neuron}": stats.distribution(neuron)}
    records = binned_records(stats.edges, series, max_bars)
    chart = alt.Chart(alt.Data(values=records), title=f"{stats.name} neuron {neuron}")
    return chart.mark_bar(opacity=0.55).encode(
        x=alt.X("start:Q", title="activation"),
        x2="end:Q",
        y=alt.Y("share:Q", title="share of values"),
        y2=alt.datum(0),  # each series from zero, overlapping rather than stacked
        color=alt.Color("series:N", title=None, sort=list(series)),
        tooltip=[
            alt.Tooltip("series:N"),
            alt.Tooltip("start:Q", format=".2f"),
            alt.Tooltip("end:Q", format=".2f"),
            alt.Tooltip("share:Q", format=".4f"),
        ],
    ).properties(width=WIDTH, height=HEIGHT)


def kl_scatter_chart(stats: NeuronStats, labels: Sequence[str] | None = None) -> alt.Chart:
    """KL(p||q) against KL(q||p), one point per neuron, near-zero neurons in their own colour."""
    labels = labels if labels is not None else [""] * stats.n_neurons
    records = [
        {
            "neuron": neuron,
            "rank": int(stats.rank[neuron]),
            "kl_p_q": _finite_or_none(stats.kl_p_q[neuron]),
            "kl_q_p": _finite_or_none(stats.kl_q_p[neuron]),
            "near_zero": bool(stats.near_zero[neuron]),
            "label": labels[neuron],
        }
        for neuron in range(stats.n_neurons)
    ]
    chart = alt.Chart(alt.Data(values=records), title=f"{stats.name}: KL of each neuron")
    return chart.mark_circle(size=30).encode(
        x=alt.X("kl_p_q:Q", title="KL(p || q)"),
        y=alt.Y("kl_q_p:Q", title="KL(q || p)"),
        color=alt.Color("near_zero:N", title="near zero"),
        tooltip=[
            alt.Tooltip("neuron:Q"),
            alt.Tooltip("rank:Q"),
            alt.Tooltip("label:N"),
            alt.Tooltip("near_zero:N"),
            alt.Tooltip("kl_p_q:Q", format=".3f"),
            alt.Tooltip("kl_q_p:Q", format=".3f"),
        ],
    ).properties(width=WIDTH, height=WIDTH)


def concept_auroc_chart(concepts: NeuronConcepts, neuron: int) -> alt.Chart:
    """AUROC of one neuron for each feature, as bars from chance (0.5) up or down."""
    records = [
        {"feature": feature, "auroc": _finite_or_none(concepts.auroc[neuron, index])}
        for index, feature in enumerate(concepts.features)
    ]
    chart = alt.Chart(alt.Data(values=records), title=f"{concepts.name} neuron {neuron}: AUROC per feature")
    return chart.mark_bar().encode(
        x=alt.X("feature:N", title=None, sort=list(concepts.features)),
        y=alt.Y("auroc:Q", title="AUROC", scale=alt.Scale(domain=[0, 1])),
        y2=alt.datum(0.5),
        tooltip=[alt.Tooltip("feature:N"), alt.Tooltip("auroc:Q", format=".3f")],
    ).properties(width=WIDTH, height=HEIGHT)


def binned_records(
    edges: np.ndarray,  # (B+1,)
    series: dict[str, np.ndarray],  # name -> (B,) shares
    max_bars: int = MAX_BARS,
) -> list[dict[str, object]]:
    """Long-format records {series, start, end, share}, adjacent bins merged to at most max_bars."""
    n_bins = len(edges) - 1
    group = max(1, math.ceil(n_bins / max_bars))
    starts = np.arange(0, n_bins, group)  # first bin of each bar
    ends = np.minimum(starts + group, n_bins)
    records = []
    for name, shares in series.items():
        merged = np.add.reduceat(np.asarray(shares, dtype=np.float64), starts)
        records += [
            {"series": name, "start": _edge(edges[s]), "end": _edge(edges[e]), "share": float(share)}
            for s, e, share in zip(starts, ends, merged)
        ]
    return records


def _edge(value: np.floating) -> float:
    """A float32 edge as the short decimal it stands for (-0.99, not -0.9900000095367432)."""
    return round(float(value), 6)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
