"""Charts of what a unit does to the output (DESIGN.md 3.5): its decoder weights for the words it
promotes and suppresses, and the loss when it is held at its mean. Plain records in, Altair charts
out.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt

from reportgen.charts.sizes import HEIGHT, WIDTH


def output_weights_chart(records: Sequence[dict[str, object]], title: str) -> alt.Chart:
    """A unit's decoder weights for the words it promotes and suppresses most, as bars from 0.

    records: {word, weight}, in the order drawn (promoted first, most promoted on top).
    """
    return alt.Chart(alt.Data(values=list(records)), title=title).mark_bar().encode(
        y=alt.Y("word:N", title=None, sort=None),
        x=alt.X("weight:Q", title="decoder weight (logit per unit of h)"),
        color=alt.condition("datum.weight > 0", alt.value("#2b6cb0"), alt.value("#c05621")),
        tooltip=[alt.Tooltip("word:N"), alt.Tooltip("weight:Q", format=".4f")],
    ).properties(width=WIDTH, height=HEIGHT)


def ablation_feature_chart(records: Sequence[dict[str, object]], title: str) -> alt.Chart:
    """Mean Δ loss of one ablation on the positions of each feature, with the overall mean as a
    dashed rule. records: {feature, delta, positions}; delta None where a feature is absent."""
    base = alt.Chart(alt.Data(values=list(records)))
    bars = base.mark_bar().encode(
        x=alt.X("feature:N", title=None, sort=None),
        y=alt.Y("delta:Q", title="Δ loss (nats per token)"),
        color=alt.condition("datum.delta > 0", alt.value("#c53030"), alt.value("#718096")),
        tooltip=[alt.Tooltip("feature:N"), alt.Tooltip("delta:Q", format=".4f"),
                 alt.Tooltip("positions:Q", title="positions", format=",")],
    )
    overall = base.transform_filter("datum.feature == 'all positions'").mark_rule(
        strokeDash=[4, 3], color="#1a202c").encode(y="delta:Q")
    return alt.layer(bars, overall, title=title).properties(width=WIDTH, height=HEIGHT)
