"""How a unit behaves over time, for its page (`templates/unit_dynamics.html`): its gates, the
units that correlate with it, contexts sampled from each decile of its values, and its trace
over a passage with its labelled feature shaded.

The strongest contexts show the extremes; the decile samples show what is typical. They are
drawn with a seed made of the unit's name, so a page is the same on every run.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reportgen.analysis.bundle import ModelReport
from reportgen.capture.core import StateKey, state_name
from reportgen.charts import (
    GATE_TITLES,
    TRACE_POINTS,
    TRACE_SPANS,
    trace_columns,
    trace_layers,
    trace_title,
)
from reportgen.render.pages import ChartSpec, unvalidated_spec
from reportgen.render.pages.unit_contexts import Context, context_at

BANDS = 10  # deciles of the unit's values
PER_BAND = 1  # contexts sampled from each band
TRACE_TOKENS = 300  # the passage of the activation trace
SEED = 0
STATE_CODES = {"h": 0, "c": 1}  # a unit's seed: (SEED, layer, state code, unit)


@dataclass(frozen=True)
class GateRow:
    gate: str
    title: str
    left: float
    right: float
    mean: float


@dataclass(frozen=True)
class Partner:
    """A correlated unit: its name, its page when it has one (else None) and r."""

    name: str
    href: str | None
    r: float


@dataclass(frozen=True)
class BandContext:
    """A position sampled from one band of the unit's values, with its neighbours."""

    band: str  # e.g. "10–20%"
    low: float
    high: float
    context: Context


@dataclass(frozen=True)
class UnitDynamics:
    gates: list[GateRow]  # empty for a plain RNN
    memory_gate: str
    time_constant: float  # -1 / ln(mean gate), +inf for a gate of exactly 1
    product_time_constant: float  # -1 / mean(ln gate)
    correlated: bool  # whether this unit's partners were computed
    positive: list[Partner]
    negative: list[Partner]
    typical: list[BandContext]
    trace: ChartSpec
    trace_range: tuple[int, int]
    feature: str  # the shaded feature, "" for none

    @property
    def charts(self) -> list[ChartSpec]:
        return [self.trace]


def gate_rows(report: ModelReport, key: StateKey,
              neuron: int) -> tuple[list[GateRow], float, float]:
    """The unit's gate rows and its two time constants (`analysis.gates`)."""
    if report.gates is None:
        return [], float("nan"), float("nan")
    stats = report.gates.of_layer(key[0])
    rows = [GateRow(gate, GATE_TITLES.get(gate, gate), float(stats.left[index, neuron]),
                    float(stats.right[index, neuron]), float(stats.mean[index, neuron]))
            for index, gate in enumerate(stats.gates)]
    return rows, float(stats.time_constant[neuron]), float(stats.product_time_constant[neuron])


def partners(report: ModelReport, key: StateKey, neuron: int,
             page_of: Callable[[StateKey, int], str]) -> tuple[list[Partner], list[Partner]]:
    """The positive and negative partners, linked to their pages when they have one."""
    if report.correlations is None:
        return [], []
    result = report.correlations
    paged = {k: set(int(u) for u in found.units) for k, found in result.states.items()}

    def partner(other: StateKey, unit: int, r: float) -> Partner:
        href = "../" + page_of(other, unit) if unit in paged.get(other, ()) else None
        return Partner(f"{state_name(other)} unit {unit}", href, r)

    positive, negative = result.partners(key, neuron)
    return [partner(*item) for item in positive], [partner(*item) for item in negative]


def was_correlated(report: ModelReport, key: StateKey, neuron: int) -> bool:
    """Whether the report computed this unit's partners: it had a page when it was built."""
    found = report.correlations.states.get(key) if report.correlations is not None else None
    return found is not None and neuron in found.units


def band_contexts(tokens: list[str], values: np.ndarray,
                  rng: np.random.Generator) -> list[BandContext]:
    """PER_BAND positions drawn at random from each tenth of the positions ranked by value
    (T,), lowest tenth first. Ranks, not value edges: when many values tie (a unit at rest),
    every band still holds a tenth of the text, ties taken in text order."""
    order = np.argsort(values, kind="stable")  # (T,) positions, lowest value first
    bounds = np.linspace(0, len(values), BANDS + 1).astype(int)
    found = []
    for band in range(BANDS):
        members = order[bounds[band] : bounds[band + 1]]
        if members.size == 0:
            continue
        low, high = float(values[members[0]]), float(values[members[-1]])
        picks = np.sort(rng.choice(members, size=min(PER_BAND, members.size), replace=False))
        for position in picks:
            found.append(BandContext(f"{100 * band // BANDS}–{100 * (band + 1) // BANDS}%", low, high,
                                     context_at(tokens, int(position), float(values[position]))))
    return found


def trace_window(values: np.ndarray, flags: np.ndarray | None, high: bool) -> tuple[int, int]:
    """TRACE_TOKENS positions centred on the unit's highest value (lowest when `high` is False)
    among the positions where its labelled feature holds, flags (T,), so that the passage
    shows the feature; among all positions when it has no label."""
    if flags is not None and flags.any():
        values = np.where(flags, values, np.nan)
    centre = int(np.nanargmax(values) if high else np.nanargmin(values))
    start = min(max(0, centre - TRACE_TOKENS // 2), max(0, len(values) - TRACE_TOKENS))
    return start, min(len(values), start + TRACE_TOKENS)


def feature_spans(flags: np.ndarray, start: int) -> list[dict[str, object]]:
    """Runs of True in flags (S,) of positions start.., as [start - 0.5, end + 0.5] spans."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))  # starts and ends of runs, alternating
    return [{"start": start + a - 0.5, "end": start + b - 0.5}
            for a, b in zip(edges[::2], edges[1::2])]


def strongest_label(report: ModelReport, key: StateKey, neuron: int) -> tuple[str, bool]:
    """The unit's strongest label and whether the unit is high on it; ("", True) for none."""
    if report.concepts is None or key not in report.concepts.states:
        return "", True
    labels = report.concepts.states[key].labels[neuron]
    return (labels[0][0], labels[0][1] >= 0.5) if labels else ("", True)


@functools.cache
def trace_structure(shaded: bool) -> str:
    """The trace's spec without its passage, as JSON: built once, since Altair's conversion
    costs about 50 ms a chart, most of a unit page's time."""
    return json.dumps(unvalidated_spec(lambda: trace_layers(shaded)))


def trace_spec(points: list[dict[str, object]], spans: list[dict[str, object]], title: str,
               feature: str) -> dict[str, Any]:
    """The same spec as `activation_trace_chart(points, spans, title, feature).to_dict()`."""
    spec = json.loads(trace_structure(bool(spans)))
    spec["title"] = trace_title(title, feature, bool(spans))
    spec["datasets"] = {TRACE_POINTS: trace_columns(points),
                        **({TRACE_SPANS: spans} if spans else {})}
    return spec


def trace_chart(report: ModelReport, key: StateKey, neuron: int, values: np.ndarray,
                figure: str) -> tuple[ChartSpec, tuple[int, int], str]:
    feature, high = strongest_label(report, key, neuron)
    flags = None  # (T,) where the labelled feature holds
    if feature and report.features is not None and feature in report.features.values:
        flags = np.asarray(report.features.values[feature], dtype=bool)
    start, stop = trace_window(values, flags, high)
    tokens = report.capture.tokens
    points = [{"position": t, "value": round(float(values[t]), 3), "token": tokens[t]}
              for t in range(start, stop)]
    spans = [] if flags is None else [dict(span, feature=feature)
                                      for span in feature_spans(flags[start:stop], start)]
    title = f"{state_name(key)} unit {neuron}, positions {start:,}–{stop - 1:,}"
    spec = trace_spec(points, spans, title, feature)
    where = f" where {feature} holds" if spans else ""
    caption = (f"The unit's value over {stop - start} tokens around its "
               f"{'highest' if high else 'lowest'} value{where}"
               + (f"; shaded: the tokens where {feature} holds." if spans else "."))
    return ChartSpec("trace", spec, caption, f"{figure}-trace" if figure else ""), (start, stop), \
        feature if spans else ""


def unit_dynamics(report: ModelReport, key: StateKey, neuron: int, figure: str,
                  page_of: Callable[[StateKey, int], str]) -> UnitDynamics:
    """The unit page's dynamics sections; `figure` is the stem of its figures under img/ ("" for
    none)."""
    values = report.capture.states[key][:, neuron].astype(np.float32)  # (T,)
    gates, time_constant, product_time_constant = gate_rows(report, key, neuron)
    positive, negative = partners(report, key, neuron, page_of)
    rng = np.random.default_rng([SEED, key[0], STATE_CODES[key[1]], neuron])
    trace, trace_range, feature = trace_chart(report, key, neuron, values, figure)
    return UnitDynamics(
        gates=gates,
        memory_gate=report.gates.memory_gate if report.gates is not None else "",
        time_constant=time_constant,
        product_time_constant=product_time_constant,
        correlated=was_correlated(report, key, neuron),
        positive=positive,
        negative=negative,
        typical=band_contexts(report.capture.tokens, values, rng),
        trace=trace,
        trace_range=trace_range,
        feature=feature,
    )


def with_dynamics_columns(frame: pd.DataFrame, report: ModelReport) -> pd.DataFrame:
    """neurons.csv's gate columns (the same on a unit's h and c rows) and, for the units that
    have a page, the most correlated other unit and its r; empty elsewhere."""
    if report.gates is not None:
        frame = frame.merge(report.gates.to_frame(), on=["layer", "state", "neuron"], how="left",
                            validate="one_to_one")
    names, rs = [""] * len(frame), [np.nan] * len(frame)
    if report.correlations is not None:
        rows = {(layer, state, neuron): index for index, (layer, state, neuron) in
                enumerate(zip(frame["layer"], frame["state"], frame["neuron"]))}
        for key in report.correlations.states:
            for unit, (name, r) in report.correlations.top_partner_names(key).items():
                names[rows[(key[0], key[1], unit)]], rs[rows[(key[0], key[1], unit)]] = name, r
    return frame.assign(top_correlated=names, top_correlated_r=rs)
