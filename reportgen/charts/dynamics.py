"""Chart builders for how units behave over time: gate saturation, memory time constants and a
unit's activation trace over a passage. Plain records in, Altair charts out, as in the rest of
`reportgen.charts`; corpus text reaches a chart only as data, shown in tooltips, which
vega-embed escapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt

GATE_TITLES = {"i": "input gate", "f": "forget gate", "o": "output gate", "r": "reset gate",
               "z": "update gate"}
PANEL = 200  # px: each gate's square panel
TRACE_WIDTH = 760
TRACE_HEIGHT = 200
SPAN_COLOUR = "#f2b447"


def gate_saturation_chart(records: Sequence[dict[str, object]], gates: Sequence[str],
                          layer: str) -> alt.HConcatChart:
    """Left against right saturation, one point per unit, one panel per gate (Karpathy et al.
    2015, figure 3). Records: neuron, gate, left, right and href (a unit page or None).

    Panels side by side over one shared dataset, each named by its x axis, rather than a
    facet, whose header titles are more text for the figures to carry.
    """
    axis = alt.Scale(domain=[0, 1])

    def panel(gate: str) -> alt.Chart:
        return alt.Chart().mark_circle(size=22, opacity=0.6).encode(
            x=alt.X("left:Q", title=f"{GATE_TITLES.get(gate, gate)}: share of tokens < 0.1",
                    scale=axis),
            y=alt.Y("right:Q", title=f"{layer} units: share with gate > 0.9", scale=axis),
            href="href:N",
            tooltip=[alt.Tooltip("neuron:Q", title="unit"),
                     alt.Tooltip("gate_title:N", title="gate"),
                     alt.Tooltip("left:Q", title="< 0.1", format=".3f"),
                     alt.Tooltip("right:Q", title="> 0.9", format=".3f")],
        ).transform_filter(alt.datum.gate == gate).properties(width=PANEL, height=PANEL)

    return alt.hconcat(*(panel(gate) for gate in gates), data=alt.Data(values=list(records)),
                       title=f"{layer}: gate saturation of each unit")


def time_constant_chart(records: Sequence[dict[str, object]], title: str,
                        axis_title: str) -> alt.Chart:
    """A histogram of time constants binned in Python on a log scale. Records: start, end
    (tokens), count, and last: the bin's upper end in words, "∞" where it holds infinite ones."""
    chart = alt.Chart(alt.Data(values=list(records)), title=title).mark_bar()
    return chart.encode(
        x=alt.X("start:Q", title=axis_title, scale=alt.Scale(type="log")),
        x2="end:Q",
        y=alt.Y("count:Q", title="units"),
        y2=alt.datum(0),
        tooltip=[alt.Tooltip("start:Q", title="from", format=".3g"),
                 alt.Tooltip("last:N", title="to"),
                 alt.Tooltip("count:Q", title="units")],
    ).properties(width=420, height=PANEL)


TRACE_POINTS = "trace_points"  # the trace's named datasets: `datasets` of the spec's top level
TRACE_SPANS = "trace_spans"


def trace_title(title: str, feature: str, shaded: bool) -> str:
    return f"{title}; shaded: {feature}" if shaded else title


POINT_FIELDS = ("position", "value", "token")


def trace_columns(points: Sequence[dict[str, object]]) -> list[dict[str, list[object]]]:
    """The passage's records as one record of columns, which the chart flattens back: the
    field names are written once, not once per token, a third of a trace's bytes."""
    return [{name: [point[name] for point in points] for name in POINT_FIELDS}]


def trace_layers(shaded: bool) -> alt.LayerChart:
    """The trace's marks, reading the passage from the named datasets TRACE_POINTS (position,
    value and token, as `trace_columns` writes them) and TRACE_SPANS (start, end, feature).
    Named data keeps the records out of Altair's conversion, which walks every record: the page
    builds this structure once and puts each unit's passage in."""
    passage = alt.Chart(alt.NamedData(TRACE_POINTS)).transform_flatten(list(POINT_FIELDS))
    dots = alt.OverlayMarkDef(size=10, filled=True)  # each token a point to hover
    line = passage.mark_line(strokeWidth=1.2, point=dots).encode(
        x=alt.X("position:Q", title="position in the text",
                scale=alt.Scale(nice=False, zero=False)),
        y=alt.Y("value:Q", title="activation"),
        tooltip=[alt.Tooltip("token:N", title="token"),
                 alt.Tooltip("position:Q", title="position"),
                 alt.Tooltip("value:Q", title="value", format=".3f")],
    )
    layers = [line]
    if shaded:
        shade = alt.Chart(alt.NamedData(TRACE_SPANS)).mark_rect(
            color=SPAN_COLOUR, opacity=0.3).encode(
            x="start:Q", x2="end:Q",
            tooltip=[alt.Tooltip("feature:N", title="feature")],
        )
        layers.insert(0, shade)
    return alt.layer(*layers).properties(width=TRACE_WIDTH, height=TRACE_HEIGHT)


def activation_trace_chart(points: Sequence[dict[str, object]],
                           spans: Sequence[dict[str, object]], title: str,
                           feature: str) -> alt.LayerChart:
    """A unit's value at each position of a passage as a line, with the positions of its
    labelled feature shaded. Points: position, value, token; spans: start, end, feature."""
    datasets = {TRACE_POINTS: trace_columns(points)}
    if spans:
        datasets[TRACE_SPANS] = list(spans)
    return trace_layers(bool(spans)).properties(
        title=trace_title(title, feature, bool(spans)), datasets=datasets)
