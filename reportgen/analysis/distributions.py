"""Distributions: each neuron's histogram, the layer's average, KL both ways, near-zero flags.

This module chains the stages for every layer and state and holds their results
(`NeuronStats`, `DistributionResult`): the streamed counts and moments of `histograms`, then
the divergences and ranking of `divergences` (DESIGN.md 3.2). Why each stage computes what it
does is written in its own module. Each half of the text is counted on its own and the halves
summed, so the ranking's stability between the halves costs no extra pass.

The near-zero rule lives here: a neuron is near-zero when strictly more than
`NEAR_ZERO_SHARE` (90%) of its values lie in [-`NEAR_ZERO_BOUND`, `NEAR_ZERO_BOUND`]
([-0.01, 0.01]), bounds included, the bound being 0.01 as written in the states' own dtype.
The moments count the values within the bound, so `NEAR_ZERO_BOUND` is defined beside them in
`histograms`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import altair as alt
import numpy as np
import pandas as pd

from reportgen.analysis.divergences import (
    KL_SMOOTHING,
    Divergences,
    RankBy,
    Stability,
    check_rank_by,
    check_smoothing,
    divergences,
    rank_neurons,
    ranking_stability,
)
from reportgen.analysis.histograms import (
    CHUNK_ROWS,
    bin_edges,
    histogram_counts,
    neuron_distributions,
    overflow_counts,
    state_interval,
    stream_moments,
)
from reportgen.capture.core import Capture, StateKey, state_name
from reportgen.charts import average_distribution_chart, kl_scatter_chart, neuron_histogram_chart
from reportgen.errors import ReportgenError

if TYPE_CHECKING:
    from reportgen.analysis.concepts import ConceptResult

NEAR_ZERO_SHARE = 0.9  # near-zero when strictly more than this share is within NEAR_ZERO_BOUND

NEURON_COLUMNS = (
    "layer", "state", "neuron", "kl_p_q", "kl_q_p", "js", "score", "rank", "near_zero",
    "mean", "mean_abs", "std", "frac_near_zero", "label", "label_auroc", "share_outside",
)


@dataclass(frozen=True)
class NeuronStats:
    """Histograms and per-neuron figures of one layer and state."""

    key: StateKey
    edges: np.ndarray  # (B+1,) float32 bin edges
    counts: np.ndarray  # (H, B) int64 values per neuron and bin
    below: np.ndarray  # (H,) int64 values below edges[0], in the lower overflow slot
    above: np.ndarray  # (H,) int64 values above edges[-1], in the upper overflow slot
    average: np.ndarray  # (B,) float64 the mean share of the neurons' values in each bin
    kl_p_q: np.ndarray  # (H,) float64 KL(p_n || q) in nats, of add-k smoothed counts
    kl_q_p: np.ndarray  # (H,) float64 KL(q || p_n) in nats
    js: np.ndarray  # (H,) float64 JS(p_n, q) in nats
    score: np.ndarray  # (H,) float64 the figure ranked by, see `rank_by`
    rank: np.ndarray  # (H,) int64, 1 = highest score, near-zero neurons after the others
    rank_by: str
    kl_smoothing: float  # k of the add-k smoothing
    halves: tuple[Divergences, Divergences]  # the same divergences from each half of the text
    mean: np.ndarray  # (H,) float64
    mean_abs: np.ndarray  # (H,) float64
    std: np.ndarray  # (H,) float64, ddof=0
    frac_near_zero: np.ndarray  # (H,) float64 share of values in [-0.01, 0.01]
    near_zero: np.ndarray  # (H,) bool
    n_positions: int
    mean_abs_activation: float  # over all neurons and positions: the dropout comparison's figure
    share_outside: float  # of all values, in the overflow slots
    bounded: bool = True  # h bounded by tanh, binned over [-1, 1]; False: interval from data

    @property
    def name(self) -> str:
        return state_name(self.key)

    @property
    def n_neurons(self) -> int:
        return self.counts.shape[0]

    @property
    def interval(self) -> tuple[float, float]:
        """(low, high) as the decimals they stand for, not their float32 approximations."""
        return round(float(self.edges[0]), 6), round(float(self.edges[-1]), 6)

    @property
    def outside(self) -> np.ndarray:
        """(H,) int64 values outside the interval, in either overflow slot."""
        return self.below + self.above

    @property
    def neuron_share_outside(self) -> np.ndarray:
        """(H,) float64 each neuron's share of values outside the interval."""
        return self.outside / max(self.n_positions, 1)

    @property
    def stability(self) -> Stability:
        """Top-20 overlap and Spearman's rho of this ranking between the text's two halves."""
        first, second = (half.score(self.rank_by) for half in self.halves)  # type: ignore[arg-type]
        return ranking_stability(first, second, self.near_zero)

    def distribution(self, neuron: int) -> np.ndarray:
        """(B,) float64: the share of the neuron's values in each bin, those outside counted in
        the total."""
        return neuron_distributions(self.counts[neuron : neuron + 1], self.n_positions)[0]

    def top(self, n: int) -> np.ndarray:
        """The indices of the n best-ranked neurons that are not near-zero, best first."""
        order = np.argsort(self.rank, kind="stable")
        return order[~self.near_zero[order]][:n]

    def reranked(self, rank_by: RankBy) -> NeuronStats:
        """The same figures ranked by another score, without recounting."""
        score = Divergences(self.kl_p_q, self.kl_q_p, self.js).score(rank_by)
        rank = rank_neurons(score, self.near_zero)
        return dataclasses.replace(self, score=score, rank=rank, rank_by=rank_by)

    def to_frame(self, concepts: ConceptResult | None = None) -> pd.DataFrame:
        """One row per neuron with the neurons.csv columns; labels come from `concepts`."""
        labels, label_auroc = _labels(self, concepts)
        layer, state = self.key
        return pd.DataFrame({
            "layer": layer,
            "state": state,
            "neuron": np.arange(self.n_neurons),
            "kl_p_q": self.kl_p_q,
            "kl_q_p": self.kl_q_p,
            "js": self.js,
            "score": self.score,
            "rank": self.rank,
            "near_zero": self.near_zero,
            "mean": self.mean,
            "mean_abs": self.mean_abs,
            "std": self.std,
            "frac_near_zero": self.frac_near_zero,
            "label": labels,
            "label_auroc": label_auroc,
            "share_outside": self.neuron_share_outside,
        }, columns=list(NEURON_COLUMNS))

    def average_chart(self) -> alt.Chart:
        return average_distribution_chart(self.edges, self.average, self.name)

    def kl_chart(self, concepts: ConceptResult | None = None) -> alt.Chart:
        """The KL scatter, labelled units in their own colour when `concepts` labels them."""
        labels = None
        if concepts is not None and self.key in concepts.states:
            state_concepts = concepts.states[self.key]
            labels = [state_concepts.labels_text(n) for n in range(self.n_neurons)]
        return kl_scatter_chart(self.name, self.rank, self.kl_p_q, self.kl_q_p, self.near_zero,
                                labels)

    def neuron_chart(self, neuron: int) -> alt.Chart:
        return neuron_histogram_chart(self.edges, self.average, self.distribution(neuron),
                                      self.name, neuron)


@dataclass(frozen=True)
class DistributionResult:
    """`NeuronStats` for every layer and state, in report order."""

    states: dict[StateKey, NeuronStats]
    rank_by: str

    def __getitem__(self, key: StateKey) -> NeuronStats:
        return self.states[key]

    @property
    def keys(self) -> list[StateKey]:
        return list(self.states)

    def reranked(self, rank_by: RankBy) -> DistributionResult:
        states = {key: stats.reranked(rank_by) for key, stats in self.states.items()}
        return DistributionResult(states=states, rank_by=rank_by)

    def to_frame(self, concepts: ConceptResult | None = None) -> pd.DataFrame:
        """The rows of neurons.csv for every layer and state."""
        frames = [stats.to_frame(concepts) for stats in self.states.values()]
        return pd.concat(frames, ignore_index=True)

    def stability_records(self) -> list[dict[str, object]]:
        """Per layer and state, how stable the ranking is between the text's two halves: the
        records `report.json` holds under "ranking_stability"."""
        return [{"state": stats.name, "rank_by": stats.rank_by, "kl_smoothing": stats.kl_smoothing,
                 "top_n": stats.stability.top_n, "top_overlap": stats.stability.top_overlap,
                 "spearman": stats.stability.spearman} for stats in self.states.values()]

    def summary_frame(self) -> pd.DataFrame:
        """One row per layer and state: interval, share outside, mean |activation|, near-zero
        share, and the ranking's stability between the text's halves."""
        rows = [{
            "layer": key[0],
            "state": key[1],
            "interval_low": stats.interval[0],
            "interval_high": stats.interval[1],
            "share_outside": stats.share_outside,
            "mean_abs_activation": stats.mean_abs_activation,
            "near_zero_share": float(stats.near_zero.mean()) if stats.n_neurons else float("nan"),
            "kl_smoothing": stats.kl_smoothing,
            "stability_top_n": stats.stability.top_n,
            "stability_top_overlap": stats.stability.top_overlap,
            "stability_spearman": stats.stability.spearman,
        } for key, stats in self.states.items()]
        return pd.DataFrame(rows)


def _labels(stats: NeuronStats, concepts: ConceptResult | None) -> tuple[list[str], np.ndarray]:
    """Each neuron's concept label and its AUROC, or empty labels without a concept result."""
    if concepts is None or stats.key not in concepts.states:
        return [""] * stats.n_neurons, np.full(stats.n_neurons, np.nan)
    state_concepts = concepts.states[stats.key]
    return list(state_concepts.label), state_concepts.label_auroc


def analyse_distributions(
    capture: Capture,
    cell_interval: float | None = None,
    rank_by: RankBy = "score",
    chunk_rows: int = CHUNK_ROWS,
    unbounded_hidden: bool = False,
    kl_smoothing: float = KL_SMOOTHING,
) -> DistributionResult:
    """Histograms, KL ranking and per-neuron figures of every layer and state of a capture.

    `unbounded_hidden`: the model's h has no bound (an RNN_RELU), so its interval comes from the
    data, as c's does. `kl_smoothing`: k of the counts' add-k smoothing."""
    check_rank_by(rank_by)
    check_smoothing(kl_smoothing)
    if capture.n_tokens == 0:
        raise ReportgenError("the capture holds no tokens; give a text with at least one token")
    states = {
        key: analyse_state(key, capture.states[key], cell_interval, rank_by, chunk_rows,
                           unbounded_hidden, kl_smoothing)
        for key in capture.keys
    }
    return DistributionResult(states=states, rank_by=rank_by)


def analyse_state(
    key: StateKey,
    values: np.ndarray,  # (T, H) float32 or float16
    cell_interval: float | None = None,
    rank_by: RankBy = "score",
    chunk_rows: int = CHUNK_ROWS,
    unbounded_hidden: bool = False,
    kl_smoothing: float = KL_SMOOTHING,
) -> NeuronStats:
    """Everything of `NeuronStats` for one layer and state, streamed over chunks of positions:
    one pass for the counts (each half of the text apart), one for the moments, and for c one
    before them for its interval."""
    bounded = key[1] != "c" and not unbounded_hidden
    half_width = state_interval(key, values, cell_interval, chunk_rows, bounded)
    edges = bin_edges(-half_width, half_width)
    middle = values.shape[0] // 2
    halves = [histogram_counts(values[:middle], edges, chunk_rows),
              histogram_counts(values[middle:], edges, chunk_rows)]  # (counts, below, above) each
    counts, below, above = (first + second for first, second in zip(*halves))
    moments = stream_moments(values, chunk_rows)
    name = state_name(key)
    if not (np.isfinite(moments.total).all() and np.isfinite(moments.shifted_squares).all()):
        raise ReportgenError(
            f"state {name} holds NaN or infinite values; check the checkpoint and the capture"
        )
    whole = divergences(overflow_counts(counts, below, above), kl_smoothing)
    score = whole.score(rank_by)
    frac_near_zero = moments.near_zero_count / moments.n
    near_zero = frac_near_zero > NEAR_ZERO_SHARE
    return NeuronStats(
        key=key,
        edges=edges,
        counts=counts,
        below=below,
        above=above,
        average=neuron_distributions(counts, moments.n).mean(axis=0),
        kl_p_q=whole.kl_p_q,
        kl_q_p=whole.kl_q_p,
        js=whole.js,
        score=score,
        rank=rank_neurons(score, near_zero),
        rank_by=rank_by,
        kl_smoothing=kl_smoothing,
        halves=(divergences(overflow_counts(*halves[0]), kl_smoothing),
                divergences(overflow_counts(*halves[1]), kl_smoothing)),
        mean=moments.mean,
        mean_abs=moments.total_abs / moments.n,
        std=moments.std,
        frac_near_zero=frac_near_zero,
        near_zero=near_zero,
        n_positions=moments.n,
        mean_abs_activation=float(moments.total_abs.sum() / (moments.n * values.shape[1])),
        share_outside=float((below.sum() + above.sum()) / (moments.n * values.shape[1])),
        bounded=bounded,
    )
