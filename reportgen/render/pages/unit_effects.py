"""What a unit does to the prediction, for its page: output effects and mean-ablation.

The data of the `unit_effects.html` partial that `neuron.html` includes, its charts, and the
columns it adds to `neurons.csv`. Everything is computed by `analysis.output_effects` and
`analysis.ablation`; this module only picks what one unit's page shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reportgen.analysis.ablation import AblationResult
from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.output_effects import direct_contributions
from reportgen.capture.core import StateKey
from reportgen.charts import ablation_feature_chart, finite_or_none, output_weights_chart
from reportgen.render.pages import ChartSpec, unvalidated_spec
from reportgen.render.pages.unit_contexts import CONTEXT_BEFORE

ALL_POSITIONS = "all positions"


@dataclass(frozen=True)
class WeightedWord:
    word: str  # untrusted corpus text
    weight: float


@dataclass(frozen=True)
class HurtContext:
    """A position where holding the unit at its mean costs the most."""

    position: int
    delta: float
    before: str
    token: str
    next_word: str


@dataclass(frozen=True)
class Contribution:
    """The unit's direct push on the logit of the actual next word at one top context."""

    position: int
    token: str
    next_word: str
    value: float
    logit: float  # NaN at the text's last position


@dataclass(frozen=True)
class FeatureDelta:
    feature: str
    description: str
    positions: int
    delta: float  # NaN where the feature has no scored position


@dataclass(frozen=True)
class UnitEffects:
    """What the partial shows for one unit; None parts are explained there in words."""

    top_layer: int
    is_top_h: bool
    promoted: list[WeightedWord]
    suppressed: list[WeightedWord]
    contributions: list[Contribution]  # one per top context
    ablated: bool  # this unit is among the ablated ones
    ablation_tokens: int  # 0: no ablation ran
    ablation_all_units: bool
    baseline_loss: float
    delta_loss: float
    features: list[FeatureDelta]
    hurt: list[HurtContext]


def weighted_words(ids: np.ndarray, weights: np.ndarray, vocabulary: list[str]) -> list[WeightedWord]:
    return [WeightedWord(vocabulary[int(i)], float(w)) for i, w in zip(ids, weights)]


def hurt_contexts(tokens: list[str], positions: np.ndarray, deltas: np.ndarray) -> list[HurtContext]:
    return [HurtContext(int(t), float(d), " ".join(tokens[max(0, t - CONTEXT_BEFORE) : t]),
                        tokens[t], tokens[t + 1] if t + 1 < len(tokens) else "")
            for t, d in zip(positions, deltas)]


def feature_deltas(ablation: AblationResult, row: np.ndarray,
                   descriptions: dict[str, str]) -> list[FeatureDelta]:
    """Each feature's Δ loss for one unit, largest first, features without positions last."""
    items = [FeatureDelta(name, descriptions.get(name, ""), int(ablation.feature_counts[i]),
                          float(row[i])) for i, name in enumerate(ablation.features)]
    return sorted(items, key=lambda item: (math.isnan(item.delta), -np.nan_to_num(item.delta)))


def unit_effects(report: ModelReport, key: StateKey, unit: int,
                 context_positions: list[int]) -> UnitEffects:
    """The output effects and ablation of `unit` of `key`, with its direct contribution to the
    next word at each of `context_positions` (its top contexts)."""
    effects, ablation = report.output_effects, report.ablation
    captured = report.capture
    top_layer = effects.layer if effects is not None else max(layer for layer, _ in captured.keys)
    is_top_h = effects is not None and key == (effects.layer, "h")
    promoted: list[WeightedWord] = []
    suppressed: list[WeightedWord] = []
    contributions: list[Contribution] = []
    if is_top_h and effects is not None:
        promoted = weighted_words(effects.promoted_ids[unit], effects.promoted_weights[unit],
                                  captured.vocabulary)
        suppressed = weighted_words(effects.suppressed_ids[unit],
                                    effects.suppressed_weights[unit], captured.vocabulary)
        column = effects.column(unit)
        if column is not None:
            values = captured.states[key][:, unit].astype(np.float32)  # (T,)
            logits = direct_contributions(values, column, captured.token_ids,
                                          np.asarray(context_positions, dtype=np.int64))
            contributions = [contribution(captured.tokens, values, t, float(logit))
                             for t, logit in zip(context_positions, logits)]
    state = ablation.states.get(key) if ablation is not None else None
    row = state.row(unit) if state is not None else None
    descriptions = report.features.descriptions if report.features is not None else {}
    return UnitEffects(
        top_layer=top_layer, is_top_h=is_top_h, promoted=promoted, suppressed=suppressed,
        contributions=contributions, ablated=row is not None,
        ablation_tokens=ablation.n_tokens if ablation is not None else 0,
        ablation_all_units=bool(ablation.all_units) if ablation is not None else False,
        baseline_loss=ablation.baseline_loss if ablation is not None else math.nan,
        delta_loss=float(state.delta_loss[row]) if state is not None and row is not None else math.nan,
        features=(feature_deltas(ablation, state.feature_delta[row], descriptions)
                  if ablation is not None and state is not None and row is not None else []),
        hurt=(hurt_contexts(captured.tokens, state.hurt_positions[row], state.hurt_delta[row])
              if state is not None and row is not None else []),
    )


def contribution(tokens: list[str], values: np.ndarray, t: int, logit: float) -> Contribution:
    return Contribution(t, tokens[t], tokens[t + 1] if t + 1 < len(tokens) else "",
                        float(values[t]), logit)


def effect_charts(effects: UnitEffects, label: str, figure: str) -> list[ChartSpec]:
    """The output-weight and ablation charts of one unit's page; `figure` "" for no figure."""
    charts = []
    if effects.promoted:
        weights = [{"word": item.word, "weight": item.weight} for item in effects.promoted]
        weights += [{"word": item.word, "weight": item.weight}
                    for item in reversed(effects.suppressed)]
        charts.append(ChartSpec(
            "effect-output-weights",
            unvalidated_spec(lambda: output_weights_chart(weights, f"{label}: output weights")),
            "The decoder weights of the words this unit promotes (blue) and suppresses (orange) "
            "most when it is positive; a negative value does the reverse.",
            f"{figure}-output-weights" if figure else ""))
    if effects.features:
        deltas = [{"feature": ALL_POSITIONS, "delta": finite_or_none(effects.delta_loss),
                    "positions": effects.ablation_tokens - 1}]
        deltas += [{"feature": item.feature, "delta": finite_or_none(item.delta),
                     "positions": item.positions} for item in effects.features if item.positions]
        charts.append(ChartSpec(
            "effect-ablation", unvalidated_spec(
                lambda: ablation_feature_chart(deltas, f"{label}: Δ loss when held at its mean")),
            "The rise in loss, in nats per token, when the unit is held at its mean, on all "
            "positions and on the positions of each feature; above 0 the unit helps there.",
            f"{figure}-ablation" if figure else ""))
    return charts


def joined(ids: np.ndarray, weights: np.ndarray, vocabulary: list[str]) -> str:
    """`word:weight` joined by spaces, as the labels column."""
    return " ".join(f"{vocabulary[int(i)]}:{w:.4f}" for i, w in zip(ids, weights))


def effect_columns(frame: pd.DataFrame, report: ModelReport) -> pd.DataFrame:
    """neurons.csv with the output-effect and ablation columns (README, export formats)."""
    effects, ablation = report.output_effects, report.ablation
    frame = frame.copy()
    if effects is not None:
        top = (frame["layer"] == effects.layer) & (frame["state"] == "h")
        vocabulary = report.capture.vocabulary
        for column, ids, weights in (("output_promotes", effects.promoted_ids, effects.promoted_weights),
                                     ("output_suppresses", effects.suppressed_ids,
                                      effects.suppressed_weights)):
            frame[column] = ""
            frame.loc[top, column] = [joined(ids[n], weights[n], vocabulary)
                                      for n in frame.loc[top, "neuron"]]
    if ablation is None:
        return frame
    names = ["ablation_delta_loss"] + [f"ablation_delta_loss_{f}" for f in ablation.features]
    rows = []
    for key, state in ablation.states.items():
        for index, unit in enumerate(state.units):
            rows.append([key[0], key[1], int(unit), state.delta_loss[index],
                         *state.feature_delta[index]])
    ablated = pd.DataFrame(rows, columns=["layer", "state", "neuron", *names])
    return frame.merge(ablated, on=["layer", "state", "neuron"], how="left", validate="one_to_one")

