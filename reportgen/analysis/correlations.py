"""Correlated units: for each unit that gets a page, the units of any layer and state whose
activations rise and fall with it, and those that move against it (Pearson r over the text).

Only the paged units are correlated, against every unit: each state is centred once per chunk
of positions, and one matrix product per pair of layer-states accumulates the cross products,
so the cost is T x (paged units) x (all units), not T x (all units)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reportgen.capture import Capture, StateKey, state_name

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


def moments(states: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation of each column of (T, H), in float64."""
    total = np.zeros(states.shape[1])
    squares = np.zeros(states.shape[1])
    for start in range(0, len(states), chunk):
        block = np.asarray(states[start : start + chunk], dtype=np.float64)  # (S, H)
        total += block.sum(axis=0)
        squares += np.square(block).sum(axis=0)
    mean = total / len(states)
    return mean, np.sqrt(np.maximum(squares / len(states) - mean**2, 0.0))


def cross_products(capture: Capture, keys: list[StateKey], means: list[np.ndarray],
                   units: dict[StateKey, list[int]], chunk: int) -> dict[StateKey, np.ndarray]:
    """Sum over t of (x_p - mean_p)(x_u - mean_u): for each paged key, (P, all units) float64."""
    sums = {key: np.zeros((len(paged), sum(capture.states[k].shape[1] for k in keys)))
            for key, paged in units.items()}
    for start in range(0, capture.n_tokens, chunk):
        centred = [np.asarray(capture.states[k][start : start + chunk], dtype=np.float32)
                   - mean.astype(np.float32) for k, mean in zip(keys, means)]  # each (S, H)
        together = np.concatenate(centred, axis=1)  # (S, all units)
        for key, paged in units.items():
            own = centred[keys.index(key)][:, paged]  # (S, P)
            sums[key] += own.T @ together
    return sums


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
