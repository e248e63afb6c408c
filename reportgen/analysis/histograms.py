"""Histograms: each neuron's values counted in bins of 0.01, streamed over chunks of positions,
and the per-neuron moments (DESIGN.md 3.2).

For every layer and state this streams the (T, H) states in chunks of positions, so the memory
it needs beyond the stored states is one chunk plus the (H, B) counts. Each value gets an int32
bin index offset by its neuron, and one `np.bincount` per chunk counts every neuron at once,
which is several times faster than `np.histogram` once per neuron. Separate from the
divergences, which only read the counts, and from `distributions`, which chains both.

Choices this module makes, and why:
- Bins are 0.01 wide. `h` uses [-1, 1] (200 bins), since tanh bounds it (that of an LSTM, a
  GRU and an RNN_TANH). `c` has no bound, so its interval is [-a, a] with a the 99.9th
  percentile of |c| over that layer's cell values, rounded up to 0.01: wide enough to show the
  shape, narrow enough that one saturated cell does not stretch every histogram.
  `cell_interval` overrides a (rounded up to 0.01 too). The `h` of an RNN_RELU has no bound
  either (`unbounded_hidden`): its a is the 99.9th percentile of |h| in the same way (the
  option `cell_interval` does not apply to it). Values outside the interval are counted in
  two overflow slots, below and above, so that no value is lost: a counter-like unit whose
  values mostly lie beyond the interval keeps them in its distribution and its KL.
- Values are compared in float32 against float32 bin edges, exactly as `np.histogram(x32,
  bins=B, range=(-a, a))` places them: a value on an edge goes to the bin on its right, and a
  value equal to the upper end goes to the last bin. float16 states are cast to float32 first,
  because `np.histogram` on float16 computes float16 edges and misplaces counts.
- The moments count the values within [-0.01, 0.01], bounds included, the bound being 0.01 as
  written in the states' own dtype: the near-zero rule of `distributions` reads that count.
- Sums are accumulated in float64. std is the population standard deviation (ddof=0), from
  values shifted by the first chunk's mean, so that a large mean does not cancel it away.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from reportgen.capture.core import StateKey
from reportgen.errors import ReportgenError

BIN_WIDTH = 0.01
HIDDEN_INTERVAL = 1.0  # tanh bounds h to [-1, 1]
CELL_PERCENTILE = 99.9  # of |c|, the default half-width of the cell interval
MAX_CELL_INTERVAL = 50.0  # 10,000 bins: counts for 2,000 neurons stay at 160 MB
NEAR_ZERO_BOUND = 0.01
CHUNK_ROWS = 4096  # positions per chunk: a (4096, 2000) float32 chunk is 33 MB
# float32 arithmetic puts a value up to about B * eps32 bin widths off its exact place
# (measured: 1.5e-5 at 200 bins, 0.001 at 10,000); values within 16 times that of an edge
# are placed again by comparison with the edges.
EDGE_MARGIN = 16 * float(np.finfo(np.float32).eps)


def state_interval(
    key: StateKey, values: np.ndarray, cell_interval: float | None, chunk_rows: int = CHUNK_ROWS,
    bounded: bool | None = None,
) -> float:
    """Half-width a of the histogram interval [-a, a]: 1 for a bounded h, observed or given for
    c, observed for an unbounded h (`bounded` False; None: h is bounded, c is not)."""
    if key[1] != "c":
        if bounded is None or bounded:
            return HIDDEN_INTERVAL
        return observed_cell_interval(values, chunk_rows=chunk_rows)
    if cell_interval is None:
        return observed_cell_interval(values, chunk_rows=chunk_rows)
    if not (math.isfinite(cell_interval) and 0 < cell_interval <= MAX_CELL_INTERVAL):
        raise ReportgenError(
            f"--cell-interval must be a number in (0, {MAX_CELL_INTERVAL:g}], got {cell_interval!r}"
        )
    return _round_up_to_bins(cell_interval)


def _round_up_to_bins(half_width: float) -> float:
    """Half-width rounded up to a whole number of bins, at least one bin.

    Rounding the quotient to 9 places first keeps 0.3 / 0.01 = 29.999999999999996 at 30 bins.
    """
    return max(1, math.ceil(round(half_width / BIN_WIDTH, 9))) * BIN_WIDTH


def observed_cell_interval(
    values: np.ndarray,  # (T, H) float32 or float16
    percentile: float = CELL_PERCENTILE,
    chunk_rows: int = CHUNK_ROWS,
) -> float:
    """The percentile of |values| rounded up to 0.01, streamed without copying the states.

    Counting ceil(|x| / 0.01) gives the rounded-up percentile exactly: it is the smallest
    multiple m of 0.01 with at least `percentile`% of |x| <= m. It is at least 0.01 and at most
    `MAX_CELL_INTERVAL`; what lies beyond is then reported as the share outside.
    """
    max_steps = round(MAX_CELL_INTERVAL / BIN_WIDTH)
    step_counts = np.zeros(max_steps + 2, dtype=np.int64)  # index max_steps + 1: beyond the cap
    steps = np.empty((min(chunk_rows, values.shape[0]), values.shape[1]), dtype=np.float32)
    for chunk in float32_chunks(values, chunk_rows):
        chunk_steps = steps[: len(chunk)]
        np.abs(chunk, out=chunk_steps)
        np.divide(chunk_steps, np.float32(BIN_WIDTH), out=chunk_steps)
        np.fmin(chunk_steps, np.float32(max_steps + 1), out=chunk_steps)  # NaN and beyond: last slot
        np.ceil(chunk_steps, out=chunk_steps)
        step_counts += np.bincount(chunk_steps.astype(np.int32).ravel(), minlength=max_steps + 2)
    needed = percentile / 100 * step_counts.sum()
    steps_needed = int(np.searchsorted(np.cumsum(step_counts), needed, side="left"))
    return min(max(steps_needed, 1), max_steps) * BIN_WIDTH


def bin_edges(lo: float, hi: float, bin_width: float = BIN_WIDTH) -> np.ndarray:
    """(B+1,) float32 edges, the same numbers `np.histogram(x32, bins=B, range=(lo, hi))` uses."""
    n_bins = max(1, round((hi - lo) / bin_width))
    return np.linspace(lo, hi, n_bins + 1, dtype=np.float32)


def histogram_counts(
    values: np.ndarray,  # (T, H) float32 or float16
    edges: np.ndarray,  # (B+1,) float32 from `bin_edges`
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per neuron and bin, (H, B) int64, and the values below and above the edges per
    neuron, (H,) int64 each (NaN and +inf count as above, -inf as below).

    Each chunk's bin indices are offset by neuron times (B + 1), the extra slot collecting the
    values outside (and NaN), so one `np.bincount` counts every neuron of the chunk; the values
    below are counted apart, by comparison with the first edge.
    """
    n_neurons = values.shape[1]
    n_bins = len(edges) - 1
    slots = n_bins + 1
    if n_neurons * slots >= np.iinfo(np.int32).max:
        raise ReportgenError(
            f"{n_neurons} neurons x {n_bins} bins is too many to count; narrow --cell-interval"
        )
    offsets = np.arange(n_neurons, dtype=np.int32) * np.int32(slots)  # (H,)
    totals = np.zeros(n_neurons * slots, dtype=np.int64)
    below = np.zeros(n_neurons, dtype=np.int64)
    rows = min(chunk_rows, values.shape[0])
    # Reused for every chunk: fresh 30 MB arrays per chunk cost as much as the arithmetic.
    position = np.empty((rows, n_neurons), dtype=np.float32)
    index = np.empty((rows, n_neurons), dtype=np.int32)
    for chunk in float32_chunks(values, chunk_rows):
        below += np.count_nonzero(chunk < edges[0], axis=0)
        chunk_index = bin_indices(chunk, edges, position[: len(chunk)], index[: len(chunk)])
        np.add(chunk_index, offsets, out=chunk_index)
        totals += np.bincount(chunk_index.ravel(), minlength=n_neurons * slots)
    totals = totals.reshape(n_neurons, slots)
    return totals[:, :n_bins].copy(), below, totals[:, n_bins] - below


def overflow_counts(
    counts: np.ndarray,  # (H, B)
    below: np.ndarray,  # (H,)
    above: np.ndarray,  # (H,)
) -> np.ndarray:
    """(H, B + 2) int64: the values below the interval, its bins, then the values above."""
    return np.concatenate([below[:, None], counts, above[:, None]], axis=1)


def float32_chunks(values: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """Yield (R, H) float32 chunks of positions; other dtypes are cast into one reused buffer."""
    if values.dtype == np.float32:
        for start in range(0, values.shape[0], chunk_rows):
            yield values[start : start + chunk_rows]
        return
    buffer = np.empty((min(chunk_rows, values.shape[0]), values.shape[1]), dtype=np.float32)
    for start in range(0, values.shape[0], chunk_rows):
        chunk = values[start : start + chunk_rows]
        np.copyto(buffer[: len(chunk)], chunk, casting="same_kind")
        yield buffer[: len(chunk)]


def bin_indices(
    values: np.ndarray,  # (R, H) float32
    edges: np.ndarray,  # (B+1,) float32
    position: np.ndarray | None = None,  # (R, H) float32 scratch buffer
    out: np.ndarray | None = None,  # (R, H) int32 buffer for the result
) -> np.ndarray:
    """(R, H) int32 bin of each value, B for values outside [edges[0], edges[-1]] or NaN.

    Arithmetic gives the bin of most values; those within rounding error of an edge are placed
    again by comparison with the float32 edges, as `np.histogram` does.
    """
    n_bins = len(edges) - 1
    lo, hi = float(edges[0]), float(edges[-1])
    position = np.empty(values.shape, dtype=np.float32) if position is None else position
    index = np.empty(values.shape, dtype=np.int32) if out is None else out
    margin = EDGE_MARGIN * n_bins
    # NaN, inf and huge values give arbitrary integers and fractions; all end up in slot B.
    with np.errstate(invalid="ignore", over="ignore"):
        np.subtract(values, np.float32(lo), out=position)
        np.multiply(position, np.float32(n_bins / (hi - lo)), out=position)  # in bins from lo
        np.floor(position, out=index, casting="unsafe")
        np.subtract(position, index, out=position, dtype=np.float32, casting="unsafe")  # fraction
        near_edge = np.flatnonzero((position < margin) | (position > 1 - margin))
    # Negative bins wrap to huge unsigned values, so one minimum sends every outside value to B.
    unsigned = index.view(np.uint32)
    np.minimum(unsigned, np.uint32(n_bins), out=unsigned)
    index.ravel()[near_edge] = exact_bin_indices(values.ravel()[near_edge], edges)
    return index


def exact_bin_indices(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(N,) int32 bin of each value by comparison with the edges; B when outside."""
    n_bins = len(edges) - 1
    index = np.searchsorted(edges, values, side="right").astype(np.int32) - 1
    index[values == edges[-1]] = n_bins - 1  # the last bin includes its upper edge
    index[(index < 0) | (index >= n_bins) | np.isnan(values)] = n_bins
    return index


@dataclass(frozen=True)
class Moments:
    """Streamed per-neuron sums, in float64, of one layer and state."""

    n: int
    total: np.ndarray  # (H,) float64 sum of x
    shifted_total: np.ndarray  # (H,) float64 sum of (x - shift), shift the first chunk's mean
    shifted_squares: np.ndarray  # (H,) float64 sum of (x - shift)^2
    total_abs: np.ndarray  # (H,) float64 sum of |x|
    near_zero_count: np.ndarray  # (H,) int64 values with |x| <= 0.01

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.n

    @property
    def std(self) -> np.ndarray:
        variance = self.shifted_squares / self.n - (self.shifted_total / self.n) ** 2
        return np.sqrt(np.maximum(variance, 0.0))


def stream_moments(values: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> Moments:
    """Sums for mean, std, mean |x| and the near-zero share, one chunk of positions at a time."""
    n_neurons = values.shape[1]
    # 0.01 as the states' own dtype holds it, so a stored "0.01" counts as near zero
    bound = np.float32(np.asarray(NEAR_ZERO_BOUND, dtype=values.dtype))
    shift = np.asarray(values[:chunk_rows], dtype=np.float32).mean(axis=0)  # (H,) float32
    total = np.zeros(n_neurons)
    shifted_total = np.zeros(n_neurons)
    shifted_squares = np.zeros(n_neurons)
    total_abs = np.zeros(n_neurons)
    near_zero_count = np.zeros(n_neurons, dtype=np.int64)
    scratch = np.empty((min(chunk_rows, values.shape[0]), n_neurons), dtype=np.float32)
    for chunk in float32_chunks(values, chunk_rows):  # (R, H) float32
        work = scratch[: len(chunk)]
        total += chunk.sum(axis=0, dtype=np.float64)
        np.abs(chunk, out=work)
        total_abs += work.sum(axis=0, dtype=np.float64)
        near_zero_count += np.count_nonzero(work <= bound, axis=0)
        np.subtract(chunk, shift, out=work)
        shifted_total += work.sum(axis=0, dtype=np.float64)
        np.square(work, out=work)
        shifted_squares += work.sum(axis=0, dtype=np.float64)
    return Moments(values.shape[0], total, shifted_total, shifted_squares, total_abs, near_zero_count)


def neuron_distributions(counts: np.ndarray, n_values: int) -> np.ndarray:
    """(H, B) float64: each bin's count over the neuron's n_values, those outside included, so a
    neuron's bars sum to the share of its values inside the interval."""
    return counts / max(n_values, 1)
