"""Concepts: how well each neuron's activation separates the tokens of each feature (DESIGN.md 3.4).

The AUROC of a neuron for a feature is the probability that a token with the feature gets a
higher activation than one without (ties count half), which is the Mann-Whitney U statistic
over n_pos * n_neg. It is computed from ranks: rank each neuron's activations over all positions
(ties get their average rank), sum the ranks of each feature's positives with one matrix
product, and subtract n_pos (n_pos + 1) / 2. Neurons are ranked a chunk at a time, so memory
stays at a few (T, chunk) arrays. A feature without positives or without negatives has no AUROC
(NaN).

A neuron is labelled with the feature farthest from chance, largest |AUROC - 0.5|, when that
distance is at least the threshold (0.4: AUROC >= 0.9 or <= 0.1). Label AUROCs below 0.5 mean
the neuron is low on the feature. Equal distances go to the feature registered first.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from reportgen import charts
from reportgen.capture import Capture, StateKey, state_name
from reportgen.errors import ReportgenError
from reportgen.progress import Progress, progress_enabled
from reportgen.features import TokenFeatures

LABEL_THRESHOLD = 0.4
# AUROCs are ratios of integers and thresholds decimals, so float rounding can put an AUROC
# that is exactly at the threshold a hair below it (19/20 - 0.5 < 0.45); this slack keeps it.
LABEL_TOLERANCE = 1e-9
RANK_CHUNK_VALUES = 1 << 21  # activations ranked at once: 2M, about 100 MB of sort buffers


@dataclass(frozen=True)
class NeuronConcepts:
    """AUROC of every neuron of one layer and state for every feature, and the labels."""

    key: StateKey
    features: tuple[str, ...]
    auroc: np.ndarray  # (H, F) float64, NaN where a feature lacks positives or negatives
    label: list[str]  # H feature names, "" for an unlabelled neuron
    label_auroc: np.ndarray  # (H,) float64 AUROC of the label's feature, NaN when unlabelled

    @property
    def name(self) -> str:
        return state_name(self.key)

    def to_frame(self) -> pd.DataFrame:
        """One row per neuron: layer, state, neuron, label, label_auroc, auroc_<feature>..."""
        layer, state = self.key
        frame = pd.DataFrame({
            "layer": layer,
            "state": state,
            "neuron": np.arange(len(self.label)),
            "label": self.label,
            "label_auroc": self.label_auroc,
        })
        for index, feature in enumerate(self.features):
            frame[f"auroc_{feature}"] = self.auroc[:, index]
        return frame

    def chart(self, neuron: int) -> alt.Chart:
        return charts.concept_auroc_chart(self, neuron)


@dataclass(frozen=True)
class ConceptResult:
    """`NeuronConcepts` for every layer and state, in report order."""

    states: dict[StateKey, NeuronConcepts]
    features: tuple[str, ...]
    threshold: float

    def __getitem__(self, key: StateKey) -> NeuronConcepts:
        return self.states[key]

    def to_frame(self) -> pd.DataFrame:
        return pd.concat([concepts.to_frame() for concepts in self.states.values()], ignore_index=True)


def analyse_concepts(
    capture: Capture,
    features: TokenFeatures,
    threshold: float = LABEL_THRESHOLD,
    chunk_values: int = RANK_CHUNK_VALUES,
    progress: bool | None = False,
) -> ConceptResult:
    """AUROC of every neuron of every layer and state for every feature, and their labels.

    `progress` None shows the neurons done on stderr when it is a terminal.
    """
    if not 0 < threshold <= 0.5:
        raise ReportgenError(f"the concept label threshold must be in (0, 0.5], got {threshold!r}")
    if capture.n_tokens == 0:
        raise ReportgenError("the capture holds no tokens; give a text with at least one token")
    if features.n_tokens != capture.n_tokens:
        raise ValueError(f"features cover {features.n_tokens} tokens but the capture has {capture.n_tokens}")
    positives = features.matrix()  # (T, F) bool
    names = tuple(features.names)
    states = {}
    total = sum(capture.states[key].shape[1] for key in capture.keys)
    with Progress("concepts", total, "neurons", **progress_enabled(progress)) as bar:
        for key in capture.keys:
            auroc = neuron_aurocs(capture.states[key], positives, chunk_values, bar)
            label, label_auroc = label_neurons(auroc, names, threshold)
            states[key] = NeuronConcepts(key, names, auroc, label, label_auroc)
    return ConceptResult(states=states, features=names, threshold=threshold)


def neuron_aurocs(
    values: np.ndarray,  # (T, H) float32 or float16
    positives: np.ndarray,  # (T, F) bool
    chunk_values: int = RANK_CHUNK_VALUES,
    bar: Progress | None = None,
) -> np.ndarray:
    """(H, F) float64 AUROC of each neuron's activation for each feature, neurons in chunks;
    `bar` is advanced by the neurons of each chunk."""
    n_tokens, n_neurons = values.shape
    n_pos = positives.sum(axis=0).astype(np.float64)  # (F,)
    n_neg = n_tokens - n_pos
    pairs = n_pos * n_neg
    indicator = positives.T.astype(np.float64)  # (F, T)
    neurons_per_chunk = max(1, chunk_values // max(n_tokens, 1))
    auroc = np.empty((n_neurons, positives.shape[1]))
    for start in range(0, n_neurons, neurons_per_chunk):
        columns = values[:, start : start + neurons_per_chunk]
        chunk = np.ascontiguousarray(columns.T, dtype=np.float32)  # (h, T)
        rank_sums = average_ranks(chunk) @ indicator.T  # (h, F)
        u = rank_sums - n_pos * (n_pos + 1) / 2
        chunk_auroc = np.divide(u, pairs, out=np.full(u.shape, np.nan), where=pairs > 0)
        chunk_auroc[np.isnan(chunk).any(axis=1)] = np.nan
        auroc[start : start + len(chunk)] = chunk_auroc
        if bar is not None:
            bar.advance(len(chunk))
    return auroc


def average_ranks(values: np.ndarray) -> np.ndarray:
    """(h, T) float64 rank of each value within its row, from 1, ties given their mean rank.

    The same as `scipy.stats.rankdata(values, axis=1)`, about twice as fast: one argsort, then
    each run of equal sorted values gets the mean of its first and last position.
    """
    n = values.shape[1]
    order = np.argsort(values, axis=1)  # (h, T)
    ordered = np.take_along_axis(values, order, axis=1)
    positions = np.arange(n)
    starts_run = np.empty(ordered.shape, dtype=bool)
    starts_run[:, 0] = True
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts_run[:, 1:])
    ends_run = np.empty_like(starts_run)
    ends_run[:, -1] = True
    ends_run[:, :-1] = starts_run[:, 1:]
    first = np.maximum.accumulate(np.where(starts_run, positions, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends_run, positions, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(values.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return ranks


def label_neurons(
    auroc: np.ndarray,  # (H, F)
    features: tuple[str, ...],
    threshold: float = LABEL_THRESHOLD,
) -> tuple[list[str], np.ndarray]:
    """Each neuron's label ("" for none) and that feature's AUROC (NaN for none)."""
    if auroc.shape[1] == 0:
        return [""] * len(auroc), np.full(len(auroc), np.nan)
    distance = np.nan_to_num(np.abs(auroc - 0.5), nan=-1.0)  # (H, F), NaN never wins
    neurons = np.arange(len(auroc))
    best = distance.argmax(axis=1)  # (H,)
    labelled = distance[neurons, best] >= threshold - LABEL_TOLERANCE
    labels = [features[b] if keep else "" for b, keep in zip(best, labelled)]
    return labels, np.where(labelled, auroc[neurons, best], np.nan)
