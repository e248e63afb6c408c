"""Divergences and ranking: how far each neuron's distribution is from its layer's average,
KL in both directions, and the ranking of neurons by it (DESIGN.md 3.2).

Separate from the histograms, whose counts it reads, so that a ranking can change without
counting again (`NeuronStats.reranked`).

Choices this module makes, and why:
- KL(p||q) and KL(q||p) are in nats. Empty bins would make them infinite, so `KL_EPSILON`
  (1e-10) is added to every bin of p and q, which are then renormalised. A neuron with no value
  inside the interval has no distribution: it is left out of q and its KL is NaN.
- Every neuron gets a rank, 1 being the highest score. Neurons that are not near-zero come
  first, then neurons with a NaN score, then the near-zero ones ranked among themselves, so the
  top of the ranking never shows a near-zero neuron and the export still sorts by rank.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import rel_entr

from reportgen.errors import ReportgenError

KL_EPSILON = 1e-10

RankBy = Literal["score", "kl_p_q", "kl_q_p"]
RANK_BY_CHOICES: tuple[str, ...] = ("score", "kl_p_q", "kl_q_p")


def kl_divergences(
    p: np.ndarray,  # (H, B) rows summing to 1
    q: np.ndarray,  # (B,) summing to 1
    eps: float = KL_EPSILON,
) -> tuple[np.ndarray, np.ndarray]:
    """(H,) KL(p_n || q) and (H,) KL(q || p_n) in nats, after adding eps to every bin.

    Adding eps and renormalising keeps both finite when a bin is empty on one side only;
    with eps=0 they follow the textbook conventions (0 log 0 = 0, p log(p/0) = inf).
    """
    p = _smoothed(p, eps)
    q = _smoothed(q[np.newaxis, :], eps)
    return rel_entr(p, q).sum(axis=1), rel_entr(q, p).sum(axis=1)


def _smoothed(p: np.ndarray, eps: float) -> np.ndarray:
    """Rows of p plus eps, renormalised to sum to 1."""
    p = p + eps
    return p / p.sum(axis=1, keepdims=True)


def ranking_score(kl_p_q: np.ndarray, kl_q_p: np.ndarray, rank_by: RankBy) -> np.ndarray:
    """(H,) the figure ranked by: the sum of both KL (default) or one of them."""
    if rank_by == "score":
        return kl_p_q + kl_q_p
    if rank_by == "kl_p_q":
        return kl_p_q.copy()
    check_rank_by(rank_by)
    return kl_q_p.copy()


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
