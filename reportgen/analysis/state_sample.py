"""The states of a model at a fixed, seeded sample of positions: what the unit alignment and
the representation similarity of several models need, small enough to keep in every report.

The positions depend only on the number of tokens, the sample size (`--comparison-positions`,
default `SAMPLE_POSITIONS`) and `SAMPLE_SEED`, never on the model or on `--seed`, so every model
read on the same text is sampled at the same positions, and two reports rendered on different
machines can be compared without their models. The states are
kept as float16: on the WikiText-2 2x200 model (20k tokens, L1 against L2 and h against c)
unit correlations from float16 differ from those of float32 by at most 3.5e-5 and CKA by at
most 1e-6, far below the sampling error of the sample itself (about 1/sqrt(4000) = 0.016 for a
correlation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reportgen.capture.core import Capture, StateKey

SAMPLE_POSITIONS = 4000  # positions kept: 4000 x 650 units x 4 states x 2 bytes = 21 MB for 2x650
SAMPLE_SEED = 0  # fixed, so that every report of the same text samples the same positions
SAMPLE_DTYPE = np.float16


@dataclass
class StateSample:
    """One model's states at the sampled positions."""

    positions: np.ndarray  # (n,) int64, sorted positions of the text
    states: dict[StateKey, np.ndarray]  # each (n, H) float16

    @property
    def keys(self) -> list[StateKey]:
        """State keys in report order: layer 1 h, layer 1 c, layer 2 h, ..."""
        return sorted(self.states, key=lambda k: (k[0], k[1] != "h"))


def sample_positions(n_tokens: int, size: int = SAMPLE_POSITIONS,
                     seed: int = SAMPLE_SEED) -> np.ndarray:
    """(min(size, n_tokens),) sorted positions drawn without replacement; every position when
    the text is shorter than the sample."""
    if n_tokens <= size:
        return np.arange(n_tokens, dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(n_tokens, size=size, replace=False)
    return np.sort(chosen).astype(np.int64)


def sample_states(capture: Capture, size: int = SAMPLE_POSITIONS,
                  seed: int = SAMPLE_SEED) -> StateSample:
    """Every layer and state of `capture` at the sampled positions, as float16."""
    positions = sample_positions(capture.n_tokens, size, seed)
    states = {key: np.ascontiguousarray(capture.states[key][positions], dtype=SAMPLE_DTYPE)
              for key in capture.keys}  # each (n, H)
    return StateSample(positions, states)
