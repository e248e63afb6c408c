"""Charts of the model comparison (DESIGN.md 3.5): perplexity, mean |activation| and the share
of near-zero neurons against dropout, and each model's KL scores as boxes, one panel per layer
and state. They take the comparison's records (`Comparison.perplexity_records`,
`dropout_state_records`, `state_records`), so that charts import nothing from the analysis.
"""

from __future__ import annotations

from typing import Any

import altair as alt

KL_SCORE_TITLE = "KL(p||q) + KL(q||p), nats"
PANEL_WIDTH = 200
PANEL_HEIGHT = 170
WIDE = (420, 240)  # the perplexity chart, a single panel
MIN_SHARE_AXIS = 0.05  # the near-zero axis shows at least 0-5%, so that all zeros lie on a line


def perplexity_against_dropout_chart(records: list[dict[str, Any]],
                                     several_seeds: bool) -> alt.LayerChart:
    """Records {model, dropout, seed, perplexity and its spread over seeds}, one per model."""
    return against_dropout(records, "perplexity", "perplexity on the analysed text",
                           several_seeds, alt.Scale(zero=False), size=WIDE)


def mean_abs_against_dropout_chart(records: list[dict[str, Any]], state_names: list[str],
                                   several_seeds: bool) -> alt.FacetChart:
    """Records {model, dropout, seed, state, mean_abs and its spread}, one per model and state."""
    return faceted(against_dropout(records, "mean_abs", "mean |activation|", several_seeds,
                                   alt.Scale(zero=True)),
                   state_names, "Mean |activation| against dropout")


def near_zero_against_dropout_chart(records: list[dict[str, Any]], state_names: list[str],
                                    several_seeds: bool) -> alt.FacetChart:
    """Records {model, dropout, seed, state, near_zero_share and its spread}, one per model and
    state; the axis shows at least 0 to `MIN_SHARE_AXIS`."""
    highest = max((r["near_zero_share"] or 0.0 for r in records), default=0.0)
    scale = alt.Scale(domain=[0.0, max(MIN_SHARE_AXIS, highest)])
    return faceted(against_dropout(records, "near_zero_share", "share of near-zero neurons",
                                   several_seeds, scale, percent=True),
                   state_names, "Near-zero neurons against dropout")


def kl_score_boxes_chart(records: list[dict[str, Any]], order: list[str],
                         state_names: list[str]) -> alt.FacetChart:
    """Records {model, dropout, seed, state, kl_min ... kl_max}, one per model and state, the
    models in `order`."""
    return faceted(kl_boxes(records, order), state_names, "KL scores of each model's neurons",
                   layers_per_row=1)


def against_dropout(records: list[dict[str, Any]], value: str, title: str, several_seeds: bool,
                    scale: alt.Scale, percent: bool = False,
                    size: tuple[int, int] = (PANEL_WIDTH, PANEL_HEIGHT)) -> alt.LayerChart:
    """Points for each model coloured by seed, a line through the mean at each dropout and,
    when some dropout has several seeds, a rule from the lowest to the highest of them."""
    axis = alt.Axis(format=".0%") if percent else alt.Axis()
    x = alt.X("dropout:Q", title="dropout", scale=alt.Scale(zero=True))
    base = alt.Chart().encode(x=x)
    mean = base.mark_line(color="#5b6474").encode(
        y=alt.Y(f"{value}_mean:Q", title=title, scale=scale, axis=axis))
    points = base.mark_point(filled=True, size=70, opacity=0.9).encode(
        y=alt.Y(f"{value}:Q", title=title, scale=scale, axis=axis),
        color=alt.Color("seed:N", title="seed"),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("dropout:Q"), alt.Tooltip("seed:N"),
                 alt.Tooltip(f"{value}:Q", format=".2%" if percent else ".4g")],
    )
    layers: list[alt.Chart] = [mean, points]
    if several_seeds:
        spread = base.mark_rule(color="#5b6474", strokeWidth=2, opacity=0.5).encode(
            y=alt.Y(f"{value}_low:Q", title=title, scale=scale, axis=axis),
            y2=alt.Y2(f"{value}_high:Q"))
        layers.insert(0, spread)
    return alt.layer(*layers, data=alt.Data(values=records)).properties(
        width=size[0], height=size[1])


def kl_boxes(records: list[dict[str, Any]], order: list[str]) -> alt.LayerChart:
    """A box for each model: whiskers from the lowest to the highest score, the box from the
    first to the third quartile, a white tick at the median."""
    x = alt.X("model:N", sort=order, title=None, axis=alt.Axis(labelAngle=-40))
    base = alt.Chart().encode(x=x, tooltip=[
        alt.Tooltip("model:N"), alt.Tooltip("dropout:Q"), alt.Tooltip("seed:N"),
        *[alt.Tooltip(f"kl_{name}:Q", format=".4g", title=name)
          for name in ("min", "q1", "median", "q3", "max")],
    ])
    whiskers = base.mark_rule(color="#5b6474").encode(
        y=alt.Y("kl_min:Q", title=KL_SCORE_TITLE), y2="kl_max:Q")
    boxes = base.mark_bar(size=14).encode(
        y=alt.Y("kl_q1:Q", title=KL_SCORE_TITLE), y2="kl_q3:Q",
        color=alt.Color("dropout:O", title="dropout"))
    medians = base.mark_tick(color="white", size=14, thickness=2).encode(
        y=alt.Y("kl_median:Q", title=KL_SCORE_TITLE))
    return alt.layer(whiskers, boxes, medians, data=alt.Data(values=records)).properties(
        width=max(PANEL_WIDTH, 28 * len(order)), height=PANEL_HEIGHT)


def faceted(chart: alt.LayerChart, state_names: list[str], title: str,
            layers_per_row: int = 2) -> alt.FacetChart:
    """One panel per layer and state, in report order, each with its own y scale."""
    states_per_layer = 2 if any(name.endswith("-c") for name in state_names) else 1
    return chart.facet(
        facet=alt.Facet("state:N", sort=state_names, title=None),
        columns=states_per_layer * layers_per_row, title=title,
    ).resolve_scale(y="independent")
