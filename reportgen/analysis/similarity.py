"""Representation similarity: how alike are two sets of states, as wholes? (Kornblith et al.
2019, "Similarity of neural network representations revisited")

Linear CKA of X (n, p) and Y (n, q), the states of the same n sampled positions, columns
centred:

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

It is 1 for representations equal up to an orthogonal transform and a global scale (so a
permutation or sign flip of units changes nothing, unlike the unit alignment), and it can be
compared between layers of different widths. It is computed in feature space, (p, q) products
of n rows, which for n = 4000 sampled positions and 650 units is cheaper than the n x n Gram
matrices. A constant representation has no CKA (NaN).

Given for every pair of models on each layer and state they share, and between every two
layers and states of each model.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from reportgen.analysis.state_sample import StateSample
from reportgen.capture import StateKey

SIMILARITY_COLUMNS = ("model_a", "layer_a", "state_a", "model_b", "layer_b", "state_b",
                      "linear_cka")


def centred(values: np.ndarray) -> np.ndarray:
    """(n, H) float64 with each column's mean removed."""
    values = values.astype(np.float64)
    return values - values.mean(axis=0)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of x (n, p) and y (n, q), rows the same positions."""
    x, y = centred(x), centred(y)
    cross = np.linalg.norm(y.T @ x) ** 2  # (q, p) product
    norms = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norms) if norms > 0 else float("nan")


@dataclass(frozen=True)
class Similarity:
    """The CKA of one model's layer-state with another's (or the same model's)."""

    model_a: str
    key_a: StateKey
    model_b: str
    key_b: StateKey
    cka: float


@dataclass
class SimilarityResult:
    """Across models on each shared state, and within each model between its states."""

    models: list[str]
    across: list[Similarity]  # model_a before model_b in page order, key_a == key_b
    within: list[Similarity]  # model_a == model_b, key_a before key_b in report order

    def frame(self) -> pd.DataFrame:
        """similarity.csv: one row per pair, across models first, then within each model."""
        return pd.DataFrame([{
            "model_a": s.model_a, "layer_a": s.key_a[0], "state_a": s.key_a[1],
            "model_b": s.model_b, "layer_b": s.key_b[0], "state_b": s.key_b[1],
            "linear_cka": s.cka,
        } for s in self.across + self.within], columns=list(SIMILARITY_COLUMNS))


class CentredStates:
    """Each model's states centred once, with ||X^T X||_F, since every state takes part in
    several pairs: the (H, H) self-products are half the cost otherwise."""

    def __init__(self, samples: dict[str, StateSample]) -> None:
        self.samples = samples
        self.values: dict[tuple[str, StateKey], np.ndarray] = {}
        self.self_norms: dict[tuple[str, StateKey], float] = {}

    def get(self, name: str, key: StateKey) -> tuple[np.ndarray, float]:
        if (name, key) not in self.values:
            x = centred(self.samples[name].states[key])  # (n, H)
            self.values[name, key] = x
            self.self_norms[name, key] = float(np.linalg.norm(x.T @ x))
        return self.values[name, key], self.self_norms[name, key]

    def cka(self, a: str, key_a: StateKey, b: str, key_b: StateKey) -> Similarity:
        """`linear_cka` of the two states, from the centred values."""
        x, x_norm = self.get(a, key_a)
        y, y_norm = self.get(b, key_b)
        norms = x_norm * y_norm
        value = float(np.linalg.norm(y.T @ x) ** 2 / norms) if norms > 0 else float("nan")
        return Similarity(a, key_a, b, key_b, value)


def compare_representations(samples: dict[str, StateSample]) -> SimilarityResult:
    """Linear CKA of every pair of models in `samples` (name -> sample, in page order) on each
    state both have, and of every two states of each model."""
    names = list(samples)
    states = CentredStates(samples)
    across = [states.cka(a, key, b, key) for a, b in combinations(names, 2)
              for key in samples[a].keys if key in samples[b].states]
    within = [states.cka(name, key_a, name, key_b)
              for name in names for key_a, key_b in combinations(samples[name].keys, 2)]
    return SimilarityResult(names, across, within)
