"""Representation similarity: how alike are two sets of states, as wholes? (Kornblith et al.
2019, "Similarity of neural network representations revisited")

Debiased linear CKA of X (n, p) and Y (n, q), the states of the same n sampled positions:

    CKA(X, Y) = HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L)),  K = X X^T, L = Y Y^T

with HSIC_1 the unbiased estimator of Song et al. (2012, "Feature selection via dependence
maximization", eq. 5). The biased estimator ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) gives
unrelated representations a floor that grows with their widths and shrinks with n: two
independent random 650-unit representations over 4,000 positions score 0.14 with it, 200-unit
ones 0.05, so a figure of 0.2 meant different things for different layers. The unbiased
estimator has expectation 0 for independent representations whatever their widths (it can come
out slightly negative), and stays 1 for a representation against itself.

It is 1 for representations equal up to an orthogonal transform and a global scale (so a
permutation or sign flip of units changes nothing, unlike the unit alignment), and it can be
compared between layers of different widths. It is computed in feature space (Kornblith et al.'s
`feature_space_linear_cka`), from (p, q) products of n rows and the squared row norms, which for
n = 4000 sampled positions and 650 units is cheaper than the n x n Gram matrices. A constant
representation has no CKA (NaN).

Each pair comes with a baseline: the CKA of the same two states with Y's positions shuffled
(one seeded permutation), what the estimate gives when the positions no longer correspond; it
should lie near 0, and a pair's CKA means something only well above it.

Given for every pair of models on each layer and state they share, and between every two
layers and states of each model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from reportgen.analysis.state_sample import StateSample
from reportgen.capture.core import StateKey

SIMILARITY_COLUMNS = ("model_a", "layer_a", "state_a", "model_b", "layer_b", "state_b",
                      "linear_cka", "linear_cka_shuffled")
SHUFFLE_SEED = 0  # the permutation of positions behind each pair's baseline


def centred(values: np.ndarray) -> np.ndarray:
    """(n, H) float64 with each column's mean removed."""
    values = values.astype(np.float64)
    return values - values.mean(axis=0)


def debiased_hsic(cross: float, rows_x: np.ndarray, rows_y: np.ndarray, norm_x: float,
                  norm_y: float, n: int) -> float:
    """n (n - 3) HSIC_1 of linear kernels, from centred features: `cross` ||Y^T X||_F^2,
    `rows_x` and `rows_y` the (n,) squared row norms (the Gram diagonals), `norm_x` and
    `norm_y` their sums (the traces). The common factor n (n - 3) cancels in CKA."""
    return (cross - n / (n - 2.0) * float(rows_x @ rows_y)
            + norm_x * norm_y / ((n - 1.0) * (n - 2.0)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA of x (n, p) and y (n, q), rows the same positions, n >= 4."""
    return centred_cka(Centred.of(x), Centred.of(y))


@dataclass
class Centred:
    """One representation prepared for CKA: its centred (n, H) float64 values, their squared
    row norms (n,), and its own debiased HSIC, since every state takes part in several pairs
    and the (H, H) self-products are half the cost otherwise."""

    values: np.ndarray  # (n, H)
    rows: np.ndarray  # (n,) squared row norms: the Gram matrix's diagonal
    total: float  # rows.sum(): the Gram matrix's trace
    self_hsic: float

    @classmethod
    def of(cls, values: np.ndarray) -> Centred:
        x = centred(values)
        rows = np.einsum("ij,ij->i", x, x)  # (n,)
        total = float(rows.sum())
        if len(x) < 4:  # HSIC_1 divides by n - 3 and n - 2
            return cls(x, rows, total, math.nan)
        cross = float(np.linalg.norm(x.T @ x) ** 2)  # (H, H) product
        return cls(x, rows, total, debiased_hsic(cross, rows, rows, total, total, len(x)))


def centred_cka(x: Centred, y: Centred, order: np.ndarray | None = None) -> float:
    """Debiased CKA of x and y, with y's rows taken in `order` when given (centring, row norms
    and the self-HSIC do not change when rows are permuted); NaN below 4 positions, where the
    estimator is undefined, or for a constant representation."""
    n = len(x.values)
    norms = x.self_hsic * y.self_hsic
    if n < 4 or not norms > 0:
        return float("nan")
    y_values = y.values if order is None else y.values[order]
    y_rows = y.rows if order is None else y.rows[order]
    cross = float(np.linalg.norm(y_values.T @ x.values) ** 2)  # (q, p) product
    return debiased_hsic(cross, x.rows, y_rows, x.total, y.total, n) / math.sqrt(norms)


@dataclass(frozen=True)
class Similarity:
    """The CKA of one model's layer-state with another's (or the same model's)."""

    model_a: str
    key_a: StateKey
    model_b: str
    key_b: StateKey
    cka: float
    shuffled: float  # the same pair with the positions of b shuffled: the estimate's baseline


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
            "linear_cka": s.cka, "linear_cka_shuffled": s.shuffled,
        } for s in self.across + self.within], columns=list(SIMILARITY_COLUMNS))


class CentredStates:
    """Each model's states prepared once (`Centred`), and one seeded shuffle of the positions
    for every baseline."""

    def __init__(self, samples: dict[str, StateSample]) -> None:
        self.samples = samples
        self.prepared: dict[tuple[str, StateKey], Centred] = {}
        n = len(next(iter(samples.values())).positions) if samples else 0
        self.shuffle = np.random.default_rng(SHUFFLE_SEED).permutation(n)  # (n,)

    def get(self, name: str, key: StateKey) -> Centred:
        if (name, key) not in self.prepared:
            self.prepared[name, key] = Centred.of(self.samples[name].states[key])
        return self.prepared[name, key]

    def cka(self, a: str, key_a: StateKey, b: str, key_b: StateKey) -> Similarity:
        """Debiased CKA of the two states, and its shuffled-positions baseline."""
        x, y = self.get(a, key_a), self.get(b, key_b)
        return Similarity(a, key_a, b, key_b, centred_cka(x, y), centred_cka(x, y, self.shuffle))


def compare_representations(samples: dict[str, StateSample]) -> SimilarityResult:
    """Debiased linear CKA of every pair of models in `samples` (name -> sample, in page order) on each
    state both have, and of every two states of each model."""
    names = list(samples)
    states = CentredStates(samples)
    across = [states.cka(a, key, b, key) for a, b in combinations(names, 2)
              for key in samples[a].keys if key in samples[b].states]
    within = [states.cka(name, key_a, name, key_b)
              for name in names for key_a, key_b in combinations(samples[name].keys, 2)]
    return SimilarityResult(names, across, within)
