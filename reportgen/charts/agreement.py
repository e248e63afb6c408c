"""Charts of the Agreement page: accuracy per task and condition with its Wilson interval
against chance, the number-unit finder's screen against exact ablation, and a unit's c and
gates along the noun-PP template. They take plain records.
"""

from __future__ import annotations

from typing import Any

import altair as alt

CONGRUENCE_COLOURS = {"congruent": "#4c78a8", "incongruent": "#e45756", "one noun": "#72b7b2"}
ROLE_COLOURS = {"top": "#e45756", "control": "#9e9e9e"}


def agreement_accuracy_chart(records: list[dict[str, Any]], tasks: list[str], title: str,
                             chance: float) -> alt.FacetChart:
    """Records {task, condition, congruence, n, accuracy, ci_low, ci_high, verdict}: a point and
    its 95% interval per condition, one panel per task in `tasks` order, and a dashed chance
    line; congruent and incongruent conditions stand side by side in their colours."""
    rows = [{**record, "chance": chance} for record in records]
    colour = alt.Color("congruence:N", title="condition",
                       scale=alt.Scale(domain=list(CONGRUENCE_COLOURS),
                                       range=list(CONGRUENCE_COLOURS.values())))
    x = alt.X("condition:N", title=None, sort=None, axis=alt.Axis(labelAngle=0))
    y = alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1]))
    tooltip = [alt.Tooltip("task:N"), alt.Tooltip("condition:N"), alt.Tooltip("n:Q"),
               alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("ci_low:Q", format=".3f"),
               alt.Tooltip("ci_high:Q", format=".3f"), alt.Tooltip("verdict:N")]
    base = alt.Chart().encode(x=x)
    interval = base.mark_rule(strokeWidth=2).encode(y=alt.Y("ci_low:Q", title="accuracy"),
                                                    y2="ci_high:Q", color=colour)
    points = base.mark_point(filled=True, size=60).encode(y=y, color=colour, tooltip=tooltip)
    chance = alt.Chart().mark_rule(strokeDash=[4, 4], color="#555").encode(y="chance:Q")
    return alt.layer(chance, interval, points, data=alt.Data(values=rows)).properties(
        width=alt.Step(28), height=200,
    ).facet(column=alt.Column("task:N", title=None, sort=tasks)).properties(title=title)


def screen_against_ablation_chart(records: list[dict[str, Any]]) -> alt.Chart:
    """Records {name, role, screen, drop}: each ablated unit's screen score against the
    incongruent accuracy its zero-ablation cost, top units and random controls apart."""
    return alt.Chart(alt.Data(values=records)).mark_point(filled=True, opacity=0.8).encode(
        x=alt.X("screen:Q", title="screen: estimated margin drop (nats per item)"),
        y=alt.Y("drop:Q", title="incongruent accuracy lost (zero-ablation)"),
        color=alt.Color("role:N", title=None, scale=alt.Scale(domain=list(ROLE_COLOURS),
                                                              range=list(ROLE_COLOURS.values()))),
        tooltip=[alt.Tooltip("name:N", title="unit"), alt.Tooltip("role:N"),
                 alt.Tooltip("screen:Q", format=".4f"), alt.Tooltip("drop:Q", format=".3f")],
    ).properties(width=420, height=260)


def unit_template_chart(records: list[dict[str, Any]], positions: list[str],
                        conditions: list[str], title: str) -> alt.FacetChart:
    """Records {quantity, step, position, condition, value}: c and the i, f, o gates of one
    unit at each position of the template, one line per condition, one panel per quantity."""
    return alt.Chart().mark_line(point=True).encode(
        x=alt.X("position:N", title=None, sort=positions, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", title=None),
        color=alt.Color("condition:N", sort=conditions),
        strokeDash=alt.StrokeDash("condition:N", sort=conditions, legend=None),
        tooltip=[alt.Tooltip("quantity:N"), alt.Tooltip("position:N"),
                 alt.Tooltip("condition:N"), alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=170, height=140).facet(
        column=alt.Column("quantity:N", title=None, sort=["c", "i", "f", "o"]),
        data=alt.Data(values=records),
    ).resolve_scale(y="independent").properties(title=title)


def agreement_against_dropout_chart(records: list[dict[str, Any]]) -> alt.Chart:
    """Records {model, dropout, task, accuracy}: each model's accuracy on each built-in task
    against its dropout, a line per task."""
    return alt.Chart(alt.Data(values=records)).mark_line(point=True).encode(
        x=alt.X("dropout:Q", title="dropout", scale=alt.Scale(zero=True)),
        y=alt.Y("accuracy:Q", title="agreement accuracy", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("task:N", title="task"),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("task:N"), alt.Tooltip("dropout:Q"),
                 alt.Tooltip("accuracy:Q", format=".3f")],
    ).properties(width=420, height=240, title="Agreement accuracy against dropout")
