"""Output effects: the words a top-layer h unit pushes up and down (DESIGN.md 3.5).

The decoder computes logits = W h + b, so top-layer h unit j adds h_j * W[w, j] to the logit of
every word w: column j of W says which words the unit promotes (large positive weights) and
suppresses (large negative ones) when it is positive, and the reverse when it is negative. At a
position, its direct contribution to the actual next word is h_j * W[next, j]. Lower layers and
cell states reach the logits only through the layers above, so they have no direct effect; the
ablation measures what they do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reportgen.inputs.model import RNNModel

OUTPUT_WORDS = 10  # words listed each way per unit


@dataclass
class OutputEffects:
    """The decoder columns of the top layer's h units, summarised; row j is unit j."""

    layer: int  # the top layer, the only one whose h reaches the decoder directly
    promoted_ids: np.ndarray  # (H, K) int64, the words of the largest weights, largest first
    promoted_weights: np.ndarray  # (H, K) float32
    suppressed_ids: np.ndarray  # (H, K) int64, the words of the most negative weights, lowest first
    suppressed_weights: np.ndarray  # (H, K) float32
    paged_units: np.ndarray  # (U,) int64, the paged top-layer h units
    paged_columns: np.ndarray  # (V, U) float32, their decoder columns, for the contributions

    def column(self, unit: int) -> np.ndarray | None:
        """(V,) the decoder weights of a paged unit, None for another unit."""
        found = np.flatnonzero(self.paged_units == unit)
        return self.paged_columns[:, int(found[0])] if found.size else None


def output_effects(model: RNNModel, paged_units: list[int],
                   count: int = OUTPUT_WORDS) -> OutputEffects:
    """Each top-layer h unit's top and bottom `count` words by decoder weight."""
    weight = model.decoder.weight.detach().float().cpu().numpy()  # (V, H)
    count = min(count, weight.shape[0])
    order = np.argsort(weight, axis=0, kind="stable")  # (V, H), ascending per unit
    promoted = order[::-1][:count].T  # (H, K)
    suppressed = order[:count].T  # (H, K)
    units = np.asarray(sorted(paged_units), dtype=np.int64)
    return OutputEffects(
        layer=model.nlayers,
        promoted_ids=promoted.astype(np.int64),
        promoted_weights=np.take_along_axis(weight.T, promoted, axis=1),
        suppressed_ids=suppressed.astype(np.int64),
        suppressed_weights=np.take_along_axis(weight.T, suppressed, axis=1),
        paged_units=units,
        paged_columns=np.ascontiguousarray(weight[:, units]),
    )


def direct_contributions(values: np.ndarray, column: np.ndarray, token_ids: np.ndarray,
                         positions: np.ndarray) -> np.ndarray:
    """(P,) what the unit adds to the logit of the actual next word at each position:
    h_t * W[w_{t+1}, unit]; NaN at the text's last position, which has no next word.

    values: (T,) the unit's h; column: (V,) its decoder weights; token_ids: (T,).
    """
    positions = np.asarray(positions, dtype=np.int64)
    out = np.full(len(positions), np.nan)
    has_next = positions + 1 < len(token_ids)
    following = token_ids[positions[has_next] + 1]
    out[has_next] = values[positions[has_next]] * column[following]
    return out
