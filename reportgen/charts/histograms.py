"""Histogram charts: a layer's average distribution and one neuron's over it (DESIGN.md 3.2).

Every histogram is binned in Python and reaches the chart as records in `data.values`, so a
page carries a few hundred numbers rather than the states. Fine histograms are merged into at
most `MAX_BARS` bars for display; the exports keep every 0.01 bin. The builders take the bin
edges and shares as arrays, not the analysis' `NeuronStats`, so that charts import nothing
from the analyses that feed them.
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np

from reportgen.charts.sizes import HEIGHT, WIDTH

MAX_BARS = 250  # 200 bins of h stay whole; a wide cell interval is merged down to this
AVERAGE = "average"


def average_distribution_chart(
    edges: np.ndarray,  # (B+1,)
    average: np.ndarray,  # (B,) shares
    name: str,
    max_bars: int = MAX_BARS,
) -> alt.Chart:
    """The layer's average distribution q as bars over the value axis; `name` is the layer and
    state's, as "L1-h"."""
    records = binned_records(edges, {AVERAGE: average}, max_bars)
    chart = alt.Chart(alt.Data(values=records), title=f"{name}: average distribution")
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


def neuron_histogram_chart(
    edges: np.ndarray,  # (B+1,)
    average: np.ndarray,  # (B,) the layer's shares
    shares: np.ndarray,  # (B,) the neuron's shares
    name: str,
    neuron: int,
    max_bars: int = MAX_BARS,
) -> alt.Chart:
    """One neuron's distribution drawn over the layer's average, as overlapping translucent bars."""
    # the average first, so the neuron's bars are drawn on top of it
    series = {AVERAGE: average, f"neuron {neuron}": shares}
    domain = histogram_domain(edges, shares)
    records = drawn_bars(binned_records(edges, series, max_bars), domain)
    chart = (alt.Chart(alt.Data(values=series_columns(records)), title=f"{name} neuron {neuron}")
             .transform_flatten(["start", "end", "share"]))
    # clamp: a bar across an end of the range is cut at the axis (mark clipping would write a
    # clip-path id that changes between conversions)
    return chart.mark_bar(opacity=0.55).encode(
        x=alt.X("start:Q", title="activation",
                scale=alt.Scale(domain=domain, nice=False, clamp=True)),
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


def series_columns(records: list[dict[str, object]]) -> list[dict[str, object]]:
    """Long records {series, start, end, share} as one record of columns per series, in order;
    a chart flattens them back. A neuron page's bars take a third of the bytes this way."""
    columns: dict[object, dict[str, list[object]]] = {}
    for record in records:
        series = columns.setdefault(record["series"], {"start": [], "end": [], "share": []})
        for name in ("start", "end", "share"):
            series[name].append(record[name])
    return [{"series": name, **values} for name, values in columns.items()]


def drawn_bars(records: list[dict[str, object]], domain: list[float]) -> list[dict[str, object]]:
    """The bars that show: some share, and at least partly inside the x range. The rest drew
    nothing, yet the layer's average over a wide cell interval made up half of a neuron page."""
    low, high = domain
    return [record for record in records
            if record["share"] > 0 and record["end"] > low and record["start"] < high]


def histogram_domain(edges: np.ndarray, shares: np.ndarray, step: float = 0.1) -> list[float]:
    """The x range of a neuron's histogram: the bins that hold its values, widened by a tenth of
    their span (at least `step`) and rounded out to multiples of `step`, within the binned
    interval. A unit that stays within ±1.5 of a ±3 cell interval is drawn over ±1.8, not ±3.

    edges (B+1,), shares (B,); a neuron with no value in any bin gets the whole interval.
    """
    held = np.flatnonzero(np.asarray(shares) > 0)
    low, high = float(edges[0]), float(edges[-1])
    if held.size == 0:
        return [_edge(edges[0]), _edge(edges[-1])]
    first, last = float(edges[held[0]]), float(edges[held[-1] + 1])
    margin = max(0.1 * (last - first), step)
    start = math.floor(round((first - margin) / step, 6)) * step
    stop = math.ceil(round((last + margin) / step, 6)) * step
    return [round(max(start, low), 6), round(min(stop, high), 6)]


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
