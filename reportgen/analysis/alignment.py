"""Unit alignment: do two models learn the same units? (Li et al. 2016, "Convergent learning")

For each pair of models and each layer and state, every unit of one model is correlated with
every unit of the other over the same sampled positions (`state_sample`), and the units are
matched one to one by the Hungarian algorithm (`scipy.optimize.linear_sum_assignment`), which
maximises the sum of the matched |r|.

Why |r| and not r: negating an LSTM unit is an exact symmetry of the network. Negate the rows
of the cell-input (g) gate that feed unit i, and c_i and h_i = o_i tanh(c_i) change sign while
the gates i, f, o do not; negate the weights that read h_i and the model computes the same
function. Two trainings are as likely to find a unit as its negation, so a unit and its
negation are the same unit here. The signed r of each match is kept in the export.

Also given, per unit, its best match: the unit of the other model with the highest |r|, which
two units of one model may share (Li et al.'s "max match"), against the one-to-one match.

A unit that is constant over the sample (every value equal in float16) has no correlation; it
is given r = 0 with every unit, so it is matched last.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from reportgen.analysis.state_sample import StateSample
from reportgen.capture.core import StateKey, state_name

THRESHOLDS = (0.5, 0.9)  # the shares of matched units above these |r| that the page reports
UNMATCHED = -1  # the match of a unit left over when the other model has fewer units

ALIGNMENT_COLUMNS = (
    "model_a", "model_b", "layer", "state", "unit", "matched_unit", "matched_r", "best_unit",
    "best_r", "labels", "matched_labels",
)


def standardised(values: np.ndarray) -> np.ndarray:
    """(n, H) float64 columns with mean 0 and norm 1; a constant column stays all zeros."""
    centred = values.astype(np.float64) - values.astype(np.float64).mean(axis=0)  # (n, H)
    norms = np.linalg.norm(centred, axis=0)  # (H,)
    return np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)


def unit_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Ha, Hb) Pearson r of every unit of `a` (n, Ha) with every unit of `b` (n, Hb)."""
    return standardised(a).T @ standardised(b)


@dataclass
class UnitAlignment:
    """The units of model a matched to those of model b, for one layer and state."""

    matched: np.ndarray  # (Ha,) int64 unit of b matched one to one, UNMATCHED if none
    matched_r: np.ndarray  # (Ha,) float64 signed r of that match, NaN if none
    best: np.ndarray  # (Ha,) int64 unit of b with the highest |r|
    best_r: np.ndarray  # (Ha,) float64 its signed r

    @property
    def matched_abs(self) -> np.ndarray:
        """(m,) |r| of the one-to-one matches, highest first: the curve the page draws."""
        values = np.abs(self.matched_r[self.matched != UNMATCHED])
        return np.sort(values)[::-1]

    def share_above(self, threshold: float) -> float:
        """Share of the matched pairs whose |r| is above `threshold`."""
        values = self.matched_abs
        return float((values > threshold).mean()) if values.size else float("nan")

    def reversed(self, r: np.ndarray) -> UnitAlignment:
        """The same matching seen from model b, given r (Ha, Hb)."""
        return alignment_from(r.T, self.matched_pairs()[::-1])

    def matched_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(self.matched != UNMATCHED)
        return rows, self.matched[rows]


def alignment_from(r: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> UnitAlignment:
    """The alignment of the rows of r (Ha, Hb) given the matched (rows, columns)."""
    rows, columns = pairs
    matched = np.full(r.shape[0], UNMATCHED, dtype=np.int64)
    matched[rows] = columns
    matched_r = np.full(r.shape[0], np.nan)
    matched_r[rows] = r[rows, columns]
    best = np.abs(r).argmax(axis=1).astype(np.int64)  # (Ha,)
    return UnitAlignment(matched, matched_r, best, r[np.arange(r.shape[0]), best])


def align_units(a: np.ndarray, b: np.ndarray) -> tuple[UnitAlignment, np.ndarray]:
    """Match the units of `a` (n, Ha) to those of `b` (n, Hb) one to one on |r|; also gives
    the (Ha, Hb) correlations, from which the match seen from b is read."""
    r = unit_correlations(a, b)  # (Ha, Hb)
    rows, columns = linear_sum_assignment(np.abs(r), maximize=True)
    return alignment_from(r, (rows, columns)), r


@dataclass
class PairAlignment:
    """Two models' units matched, in both directions, for one layer and state."""

    model_a: str
    model_b: str
    key: StateKey
    a_to_b: UnitAlignment
    b_to_a: UnitAlignment

    def summary(self) -> dict[str, float]:
        """Mean matched |r| and the share above each threshold."""
        values = self.a_to_b.matched_abs
        return {"matched_mean": float(values.mean()) if values.size else float("nan"),
                **{f"matched_share_{t:g}": self.a_to_b.share_above(t) for t in THRESHOLDS}}


@dataclass
class AlignmentResult:
    """Every pair of models (in the given order, a before b) for every state they share."""

    models: list[str]
    pairs: list[PairAlignment]
    labels: dict[tuple[str, StateKey], tuple[tuple[str, ...], ...]]  # each unit's labels

    def directed(self) -> list[tuple[str, str, StateKey, UnitAlignment]]:
        """(model, other, state, alignment of model's units) for every ordered pair."""
        found = []
        for pair in self.pairs:
            found.append((pair.model_a, pair.model_b, pair.key, pair.a_to_b))
            found.append((pair.model_b, pair.model_a, pair.key, pair.b_to_a))
        order = {name: i for i, name in enumerate(self.models)}
        return sorted(found, key=lambda item: (order[item[0]], item[2][0], item[2][1] != "h",
                                               order[item[1]]))

    def unit_labels(self, model: str, key: StateKey, unit: int) -> str:
        labels = self.labels.get((model, key), ())
        return " ".join(labels[unit]) if unit < len(labels) else ""

    def units_frame(self) -> pd.DataFrame:
        """alignment.csv: one row per ordered model pair, layer, state and unit of model_a."""
        frames = []
        for model, other, key, alignment in self.directed():
            units = np.arange(len(alignment.matched))
            frames.append(pd.DataFrame({
                "model_a": model, "model_b": other, "layer": key[0], "state": key[1],
                "unit": units,
                "matched_unit": pd.array(np.where(alignment.matched == UNMATCHED, None,
                                                  alignment.matched), dtype="Int64"),
                "matched_r": alignment.matched_r, "best_unit": alignment.best,
                "best_r": alignment.best_r,
                "labels": [self.unit_labels(model, key, u) for u in units],
                "matched_labels": [self.unit_labels(other, key, int(m)) if m != UNMATCHED
                                   else "" for m in alignment.matched],
            }))
        if not frames:
            return pd.DataFrame(columns=list(ALIGNMENT_COLUMNS))
        return pd.concat(frames, ignore_index=True)[list(ALIGNMENT_COLUMNS)]

    def curve_records(self) -> list[dict[str, object]]:
        """The sorted matched |r| of each pair and state, for the curve chart: `rank` is the
        share of matched units with a higher |r|, so pairs of different sizes share an axis."""
        records: list[dict[str, object]] = []
        for pair in self.pairs:
            values = pair.a_to_b.matched_abs
            for i, value in enumerate(values):
                records.append({"pair": f"{pair.model_a} ~ {pair.model_b}",
                                "state": state_name(pair.key),
                                "rank": i / max(len(values) - 1, 1), "abs_r": float(value)})
        return records


def align_models(samples: dict[str, StateSample],
                 labels: dict[tuple[str, StateKey], tuple[tuple[str, ...], ...]] | None = None,
                 ) -> AlignmentResult:
    """Align every pair of models in `samples` (name -> sample, in page order) on every layer
    and state both have; the samples must share their positions (see `state_sample`)."""
    names = list(samples)
    pairs = []
    for a, b in combinations(names, 2):
        for key in samples[a].keys:
            if key not in samples[b].states:
                continue
            a_to_b, r = align_units(samples[a].states[key], samples[b].states[key])
            pairs.append(PairAlignment(a, b, key, a_to_b, a_to_b.reversed(r)))
    return AlignmentResult(names, pairs, dict(labels or {}))


@dataclass
class OtherModels:
    """What a unit page of a multi-model report shows of the other models: the alignment of
    all the models, and which units each model's report gives a page to (its links)."""

    model: str  # the model whose pages these are
    alignment: AlignmentResult
    paged: dict[str, dict[StateKey, list[int]]]  # model -> state -> units with a page

    def matches(self, key: StateKey) -> list[tuple[str, UnitAlignment]]:
        """(other model, this model's units matched in it) for `key`, in the page's order."""
        return [(other, units) for model, other, k, units in self.alignment.directed()
                if model == self.model and k == key]
