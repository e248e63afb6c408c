"""Correlated units: for each unit that gets a page, the units of any layer and state whose
activations rise and fall with it, and those that move against it (Pearson r over the text).

Only the paged units are correlated, against every unit: each state is centred once per chunk
of positions, and one matrix product per pair of layer-states accumulates the cross products,
so the cost is T x (paged units) x (all units), not T x (all units)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reportgen.capture.core import Capture, StateKey, state_name
from reportgen.threads import limited_threads

TOP = 5  # partners shown each way
CHUNK = 8192  # positions centred at once: 8192 x 650 float32 is 21 MB per layer-state


@dataclass
class UnitPartners:
    """The most correlated partners of the paged units of one layer and state.

    A partner is an index into the flat list of all units, in `CorrelationResult.keys` order;
    -1 where there are fewer partners than TOP (or none: a constant unit has no correlation).
    """

    key: StateKey
    units: np.ndarray  # (P,) the paged units
    positive: np.ndarray  # (P, TOP) flat partner index, highest r first
    positive_r: np.ndarray  # (P, TOP)
    negative: np.ndarray  # (P, TOP) lowest r first
    negative_r: np.ndarray  # (P, TOP)


@dataclass
class CorrelationResult:
    keys: list[StateKey]  # every layer and state, in the order of the flat unit index
    sizes: list[int]  # units of each
    states: dict[StateKey, UnitPartners]

    def unit_of(self, flat: int) -> tuple[StateKey, int]:
        """A flat partner index -> (layer and state, unit)."""
        offsets = np.cumsum([0, *self.sizes])
        index = int(np.searchsorted(offsets, flat, side="right")) - 1
        return self.keys[index], int(flat - offsets[index])

    def partners(self, key: StateKey, unit: int) -> tuple[list[tuple[StateKey, int, float]],
                                                          list[tuple[StateKey, int, float]]]:
        """(positive, negative) partners of one paged unit as (key, unit, r); empty when the unit
        was not correlated."""
        found = self.states.get(key)
        if found is None or unit not in found.units:
            return [], []
        row = int(np.flatnonzero(found.units == unit)[0])

        def listed(flats: np.ndarray, rs: np.ndarray) -> list[tuple[StateKey, int, float]]:
            return [(*self.unit_of(int(f)), float(r)) for f, r in zip(flats[row], rs[row]) if f >= 0]

        return listed(found.positive, found.positive_r), listed(found.negative, found.negative_r)

    def top_partner_names(self, key: StateKey) -> dict[int, tuple[str, float]]:
        """Each paged unit of `key` -> its most correlated partner's name, like "L2-c-0017",
        and r, for neurons.csv."""
        found = self.states.get(key)
        if found is None:
            return {}
        named = {}
        for row, unit in enumerate(found.units):
            if found.positive[row, 0] >= 0:
                partner_key, partner = self.unit_of(int(found.positive[row, 0]))
                named[int(unit)] = (f"{state_name(partner_key)}-{partner:04d}",
                                    float(found.positive_r[row, 0]))
        return named


def chunk_of(states: np.ndarray, start: int, chunk: int) -> torch.Tensor:
    """Positions start..start+chunk of a (T, H) state as a writable float32 tensor."""
    return torch.from_numpy(np.array(states[start : start + chunk], dtype=np.float32))


def moments(states: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation of each column of (T, H).

    Each chunk's mean and variance come from numpy in float32, which centres before it squares
    (torch's column reductions are 3x slower here); the chunks are merged in float64 by Chan et
    al.'s pairwise update. Summing x and x^2 instead would lose a cell whose spread is small
    beside its mean to cancellation.
    """
    count, mean = 0, np.zeros(states.shape[1])
    squares = np.zeros(states.shape[1])  # sum of squared deviations from the mean
    for start in range(0, len(states), chunk):
        block = np.asarray(states[start : start + chunk], dtype=np.float32)  # (S, H)
        block_mean = block.mean(axis=0).astype(np.float64)
        variance = block.var(axis=0).astype(np.float64)
        n = len(block)
        delta = block_mean - mean
        squares += variance * n + delta**2 * count * n / (count + n)
        mean += delta * n / (count + n)
        count += n
    return mean, np.sqrt(squares / count)


def cross_products(capture: Capture, keys: list[StateKey], means: list[np.ndarray],
                   units: dict[StateKey, list[int]], chunk: int) -> dict[StateKey, np.ndarray]:
    """Sum over t of (x_p - mean_p)(x_u - mean_u): for each paged key, (P, all units) float64.

    torch's matrix product, not numpy's: on this skinny shape it is about 4x faster here."""
    total_units = sum(capture.states[k].shape[1] for k in keys)
    sums = {key: torch.zeros(len(paged), total_units, dtype=torch.float64)
            for key, paged in units.items()}
    centres = [torch.from_numpy(mean.astype(np.float32)) for mean in means]
    for start in range(0, capture.n_tokens, chunk):
        centred = [chunk_of(capture.states[k], start, chunk).sub_(centre)
                   for k, centre in zip(keys, centres)]  # each (S, H)
        together = torch.cat(centred, dim=1)  # (S, all units)
        for key, paged in units.items():
            own = centred[keys.index(key)][:, paged]  # (S, P)
            with limited_threads(1):  # on two threads the sums differ in their last bits
                sums[key] += own.T @ together
    return {key: total.numpy() for key, total in sums.items()}


def ranked_partners(r: np.ndarray, own: np.ndarray, top: int,
                    highest: bool) -> tuple[np.ndarray, np.ndarray]:
    """The `top` partners of each row of r (P, N) on one side of zero, leaving out the unit
    itself and NaN."""
    scores = np.where(np.isnan(r), -np.inf, r if highest else -r)  # (P, N)
    scores[np.arange(len(own)), own] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]  # (P, top)
    chosen = np.take_along_axis(r, order, axis=1)
    valid = np.isfinite(np.take_along_axis(scores, order, axis=1)) & ((chosen > 0) if highest
                                                                       else (chosen < 0))
    return np.where(valid, order, -1), np.where(valid, chosen, np.nan)


def analyse_correlations(capture: Capture, units: dict[StateKey, list[int]], top: int = TOP,
                         chunk: int = CHUNK) -> CorrelationResult:
    """For each unit listed in `units` (per layer and state), its `top` most positively and
    most negatively correlated units among all layers and states."""
    keys = capture.keys
    sizes = [capture.states[k].shape[1] for k in keys]
    offsets = dict(zip(keys, np.cumsum([0, *sizes[:-1]])))
    stats = [moments(capture.states[k], chunk) for k in keys]
    means = [mean for mean, _ in stats]
    stds = np.concatenate([std for _, std in stats])  # (all units,)
    wanted = {key: list(paged) for key, paged in units.items() if paged}
    with torch.inference_mode():
        sums = cross_products(capture, keys, means, wanted, chunk)
    states = {}
    for key, paged in wanted.items():
        own = offsets[key] + np.asarray(paged)  # (P,) flat indices
        with np.errstate(divide="ignore", invalid="ignore"):
            r = sums[key] / (capture.n_tokens * np.outer(stds[own], stds))  # (P, all units)
        r[:, stds == 0] = np.nan
        positive, positive_r = ranked_partners(r, own, top, highest=True)
        negative, negative_r = ranked_partners(r, own, top, highest=False)
        states[key] = UnitPartners(key, np.asarray(paged), positive, positive_r,
                                   negative, negative_r)
    return CorrelationResult(keys, sizes, states)
