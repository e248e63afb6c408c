"""Charts of what sets a neuron apart: its KL against the layer's average, and its AUROC for
each feature (DESIGN.md 3.2 and 3.4). They take the figures as arrays and strings, not the
analyses' result types, so that charts import nothing from the analyses that feed them.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np

from reportgen.charts.finite import finite_or_none
from reportgen.charts.sizes import HEIGHT, WIDTH

KL_KINDS = ("labelled", "unlabelled", "near zero")  # the KL scatter's colours, in legend order
KL_COLOURS = ("#b2182b", "#4c78a8", "#b8bcc4")


def kl_scatter_chart(
    name: str,
    rank: np.ndarray,  # (H,) int
    kl_p_q: np.ndarray,  # (H,) nats, NaN for none
    kl_q_p: np.ndarray,  # (H,) nats, NaN for none
    near_zero: np.ndarray,  # (H,) bool
    labels: Sequence[str] | None = None,
) -> alt.Chart:
    """KL(p||q) against KL(q||p), one point per neuron, labelled units in their own colour.

    `name` is the layer and state's, as "L1-h". `labels` holds each neuron's labels as one
    text ("" for none), as neurons.csv writes them.
    """
    n_neurons = len(rank)
    labels = labels if labels is not None else [""] * n_neurons
    records = [
        {
            "neuron": neuron,
            "rank": int(rank[neuron]),
            "kl_p_q": finite_or_none(kl_p_q[neuron]),
            "kl_q_p": finite_or_none(kl_q_p[neuron]),
            "kind": ("near zero" if near_zero[neuron]
                     else "labelled" if labels[neuron] else "unlabelled"),
            "labels": labels[neuron] or "none",
        }
        for neuron in range(n_neurons)
    ]
    chart = alt.Chart(alt.Data(values=records), title=f"{name}: KL of each neuron")
    return chart.mark_point(size=36, filled=True).encode(
        x=alt.X("kl_p_q:Q", title="KL(p || q), nats"),
        y=alt.Y("kl_q_p:Q", title="KL(q || p), nats"),
        color=alt.Color("kind:N", title="neuron",
                        scale=alt.Scale(domain=list(KL_KINDS), range=list(KL_COLOURS))),
        shape=alt.Shape("kind:N", title="neuron", scale=alt.Scale(
            domain=list(KL_KINDS), range=["diamond", "circle", "circle"])),
        tooltip=[
            alt.Tooltip("neuron:Q", title="neuron"),
            alt.Tooltip("rank:Q", title="KL rank"),
            alt.Tooltip("labels:N", title="labels (AUROC)"),
            alt.Tooltip("kind:N", title="kind"),
            alt.Tooltip("kl_p_q:Q", title="KL(p || q), nats", format=".3f"),
            alt.Tooltip("kl_q_p:Q", title="KL(q || p), nats", format=".3f"),
        ],
    ).properties(width=WIDTH, height=WIDTH)


def concept_auroc_chart(
    features: Sequence[str],
    auroc: np.ndarray,  # (F,) the neuron's AUROC for each feature, NaN for none
    within: np.ndarray,  # (F,) its within-word AUROC
    name: str,
    neuron: int,
    threshold: float,
) -> alt.Chart:
    """AUROC of one neuron for each feature, as bars from chance (0.5) up or down, with the
    within-word AUROC as a tick on each bar and the label thresholds as dashed lines."""
    records = [
        {"feature": feature, "auroc": finite_or_none(auroc[index]),
         "within": finite_or_none(within[index])}
        for index, feature in enumerate(features)
    ]
    base = alt.Chart(alt.Data(values=records))
    x = alt.X("feature:N", title=None, sort=list(features))
    bars = base.mark_bar().encode(
        x=x,
        y=alt.Y("auroc:Q", title="AUROC", scale=alt.Scale(domain=[0, 1])),
        y2=alt.datum(0.5),
        tooltip=[alt.Tooltip("feature:N", title="feature"),
                 alt.Tooltip("auroc:Q", title="AUROC", format=".3f"),
                 alt.Tooltip("within:Q", title="within-word AUROC", format=".3f")],
    )
    ticks = base.mark_tick(color="black", thickness=2).encode(x=x, y="within:Q")
    lines = alt.Chart(alt.Data(values=[{"at": 0.5 - threshold}, {"at": 0.5 + threshold}]))
    rules = lines.mark_rule(strokeDash=[4, 3], color="#5b6474").encode(y="at:Q")
    return alt.layer(bars, ticks, rules, title=f"{name} neuron {neuron}: AUROC per feature "
                                    "(ticks: within-word)").properties(width=WIDTH, height=HEIGHT)
