"""Divergences and ranking: how far each neuron's distribution is from its layer's average,
KL in both directions and Jensen-Shannon, the ranking of neurons by one of them, and how stable
that ranking is between the text's two halves (DESIGN.md 3.2).

Separate from the histograms, whose counts it reads, so that a ranking can change without
counting again (`NeuronStats.reranked`).

Choices this module makes, and why:
- Every value is counted: the counts of a neuron are its B bins inside the interval plus one
  overflow slot at each edge (B + 2 slots), so each neuron's counts sum to the text's length.
- p_n is neuron n's counts with add-k smoothing: (c + k) / (T + k S) over the S = B + 2 slots.
  A fixed epsilon added to empty bins made KL(q || p_n) count ln(1 / epsilon), about 23 nats,
  for every share of q where the neuron never goes, so the ranking depended on epsilon and on
  the text's length. Add-k (Laplace) smoothing, the estimate the thesis describes for zero
  counts, gives an empty bin the weight of k observations: k = 0.5 (`KL_SMOOTHING`, the
  Jeffreys-Krichevsky-Trofimov estimate) by default.
- q is the average's counts, the mean count of the layer's neurons in each slot, smoothed the
  same way; as every neuron has T values, it is also the mean of the smoothed p_n.
- KL(p || q), KL(q || p) and JS(p, q) are in nats. JS is symmetric and bounded by ln 2.
- Every neuron gets a rank, 1 being the highest score. Neurons that are not near-zero come
  first, then the near-zero ones ranked among themselves, so the top of the ranking never shows
  a near-zero neuron and the export still sorts by rank (a NaN score, which the counts above no
  longer give, would rank just before the near-zero neurons).
- Stability: the same figures from each half of the text (positions [0, T // 2) and
  [T // 2, T)), over the neurons that are not near-zero: how many of the top `STABILITY_TOP`
  the halves share, and Spearman's rho between their scores. A reader sees how much of a rank
  is the model and how much is the sample of text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import rel_entr
from scipy.stats import rankdata

from reportgen.errors import ReportgenError

KL_SMOOTHING = 0.5  # k of add-k smoothing
STABILITY_TOP = 20  # the top of the ranking whose overlap between the halves is stated

RankBy = Literal["score", "kl_p_q", "kl_q_p", "js"]
RANK_BY_CHOICES: tuple[str, ...] = ("score", "kl_p_q", "kl_q_p", "js")
RANK_BY_TITLES = {"score": "KL(p || q) + KL(q || p)", "kl_p_q": "KL(p || q)",
                  "kl_q_p": "KL(q || p)", "js": "JS(p, q)"}


@dataclass(frozen=True)
class Divergences:
    """Each neuron's divergences from its layer's average, in nats."""

    kl_p_q: np.ndarray  # (H,) float64 KL(p_n || q)
    kl_q_p: np.ndarray  # (H,) float64 KL(q || p_n)
    js: np.ndarray  # (H,) float64 JS(p_n, q)

    def score(self, rank_by: RankBy) -> np.ndarray:
        """(H,) the figure ranked by: the sum of both KL (default), one of them, or JS."""
        check_rank_by(rank_by)
        if rank_by == "score":
            return self.kl_p_q + self.kl_q_p
        return getattr(self, rank_by).copy()


@dataclass(frozen=True)
class Stability:
    """How alike the rankings of the text's two halves are, for one layer and state."""

    top_n: int  # the top compared: STABILITY_TOP, or fewer when fewer neurons are ranked
    top_overlap: int  # neurons in the top_n of both halves
    spearman: float  # Spearman's rho between the halves' scores; NaN below 2 neurons or when constant

    @property
    def top_overlap_share(self) -> float:
        return self.top_overlap / self.top_n if self.top_n else math.nan


def check_smoothing(k: float) -> None:
    if not (math.isfinite(k) and k > 0):
        raise ReportgenError(f"--kl-smoothing must be a positive number, got {k!r}")


def smoothed(counts: np.ndarray, k: float) -> np.ndarray:
    """(H, S) float64: each row's counts plus k, over the row's total plus k S."""
    counts = np.asarray(counts, dtype=np.float64) + k
    return counts / counts.sum(axis=1, keepdims=True)


def divergences(counts: np.ndarray, k: float = KL_SMOOTHING) -> Divergences:
    """KL both ways and JS of each neuron's smoothed counts (H, S) against the smoothed mean
    counts of all H neurons."""
    check_smoothing(k)
    p = smoothed(counts, k)  # (H, S)
    q = smoothed(counts.mean(axis=0, keepdims=True), k)  # (1, S)
    m = (p + q) / 2  # (H, S)
    js = (rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1)) / 2
    return Divergences(rel_entr(p, q).sum(axis=1), rel_entr(q, p).sum(axis=1), js)


def check_rank_by(rank_by: str) -> None:
    if rank_by not in RANK_BY_CHOICES:
        raise ReportgenError(f"unknown ranking {rank_by!r}; choose one of {', '.join(RANK_BY_CHOICES)}")


def rank_neurons(score: np.ndarray, near_zero: np.ndarray) -> np.ndarray:
    """(H,) int64 ranks from 1: by score, highest first, near-zero neurons and NaN scores last.

    Ties keep neuron order, so the ranking is deterministic.
    """
    missing = np.isnan(score)
    descending = -np.where(missing, 0.0, score)
    order = np.lexsort((np.arange(len(score)), descending, missing, near_zero))
    rank = np.empty(len(score), dtype=np.int64)
    rank[order] = np.arange(1, len(score) + 1)
    return rank


def ranking_stability(
    first: np.ndarray,  # (H,) scores from the first half of the text
    second: np.ndarray,  # (H,) scores from the second half
    near_zero: np.ndarray,  # (H,) bool, from the whole text
    top: int = STABILITY_TOP,
) -> Stability:
    """Top-`top` overlap and Spearman's rho between two rankings of the neurons not near zero."""
    ranked = ~near_zero
    a, b = first[ranked], second[ranked]
    top_n = min(top, len(a))
    top_a = np.argsort(rank_neurons(a, np.zeros(len(a), bool)))[:top_n]
    top_b = np.argsort(rank_neurons(b, np.zeros(len(b), bool)))[:top_n]
    overlap = len(np.intersect1d(top_a, top_b))
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return Stability(top_n, overlap, math.nan)
    rho = float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])  # Pearson of the ranks
    return Stability(top_n, overlap, rho)
