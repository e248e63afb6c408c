"""Hand-made `Capture`s for tests of the analyses, which read only states and tokens."""

from __future__ import annotations

import numpy as np

from reportgen.capture.core import Capture, StateKey


def make_capture(states: dict[StateKey, np.ndarray], tokens: list[str] | None = None) -> Capture:
    """A Capture of the given (T, H) states; tokens default to T copies of "w"."""
    n_tokens = next(iter(states.values())).shape[0]
    tokens = tokens if tokens is not None else ["w"] * n_tokens
    return Capture(
        token_ids=np.zeros(n_tokens, dtype=np.int64),
        tokens=tokens,
        states=states,
        log_prob_next=np.zeros(n_tokens, dtype=np.float32),
        top_ids=np.zeros((n_tokens, 5), dtype=np.int64),
        top_log_probs=np.zeros((n_tokens, 5), dtype=np.float32),
        vocabulary=sorted(set(tokens)),
    )
