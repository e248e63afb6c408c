"""Charts that set models side by side unit by unit: matched unit correlations and linear CKA
(DESIGN.md 3.5). Plain records in, Altair charts out.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt

from reportgen.charts.sizes import SMALL_PANEL


def matched_correlation_chart(records: Sequence[dict[str, object]], state_names: Sequence[str],
                              thresholds: Sequence[float]) -> alt.FacetChart:
    """Sorted matched |r| of each model pair (records {pair, state, rank, abs_r}), one panel
    per layer and state, with dashed rules at `thresholds`."""
    line = alt.Chart().mark_line(strokeWidth=1.5).encode(
        x=alt.X("rank:Q", title="matched units, best first", axis=alt.Axis(format=".0%")),
        y=alt.Y("abs_r:Q", title="|r| of the match", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("pair:N", title="models"),
        tooltip=[alt.Tooltip("pair:N"), alt.Tooltip("rank:Q", format=".0%"),
                 alt.Tooltip("abs_r:Q", format=".3f")],
    )
    rules = [alt.Chart().mark_rule(strokeDash=[4, 3], color="#5b6474").encode(y=alt.datum(t))
             for t in thresholds]
    chart = alt.layer(line, *rules, data=alt.Data(values=list(records)))
    return chart.properties(width=SMALL_PANEL, height=SMALL_PANEL).facet(
        facet=alt.Facet("state:N", sort=list(state_names), title=None),
        columns=4, title="Matched unit correlations, sorted")


def similarity_matrix_chart(records: Sequence[dict[str, object]], order: Sequence[str],
                            panels: Sequence[str], title: str) -> alt.FacetChart:
    """Squares of debiased linear CKA (records {panel, row, column, cka, shuffled}, shuffled
    the baseline over shuffled positions), one panel per `panels`, rows and columns in `order`,
    each cell labelled with its value."""
    x = alt.X("column:N", sort=list(order), title=None, axis=alt.Axis(labelAngle=-40))
    y = alt.Y("row:N", sort=list(order), title=None)
    base = alt.Chart().encode(x=x, y=y)
    cells = base.mark_rect().encode(
        color=alt.Color("cka:Q", title="linear CKA", scale=alt.Scale(domain=[0, 1], clamp=True,
                                                                      scheme="viridis")),
        tooltip=[alt.Tooltip("panel:N"), alt.Tooltip("row:N"), alt.Tooltip("column:N"),
                 alt.Tooltip("cka:Q", format=".3f"),
                 alt.Tooltip("shuffled:Q", format=".3f", title="shuffled positions")])
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("cka:Q", format=".2f"),
        color=alt.condition("datum.cka > 0.6", alt.value("black"), alt.value("white")))
    side = max(SMALL_PANEL // 2, 34 * len(order))
    return alt.layer(cells, text, data=alt.Data(values=list(records))).properties(
        width=side, height=side).facet(
        facet=alt.Facet("panel:N", sort=list(panels), title=None), columns=4, title=title)
