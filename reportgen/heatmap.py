"""Token heatmaps: the colour and tooltip of every token, computed here, drawn by templates.

A heatmap is a list of `TokenCell`s; the template writes each as an inline-styled span, so the
page needs no script to show it and a copy-pasted excerpt keeps its colours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reportgen.capture import Capture
from reportgen.corpus import EOS

# Blue (low) to white to red (high), ColorBrewer RdBu end points.
BLUE = (33, 102, 172)
WHITE = (247, 247, 247)
RED = (178, 24, 43)


@dataclass(frozen=True)
class TokenCell:
    """One token as shown: its text (untrusted), background colour and tooltip."""

    text: str
    color: str  # CSS colour, e.g. "rgb(33,102,172)"
    title: str  # tooltip, plain text
    position: int
    line_end: bool  # `<eos>`: the template breaks the line after it
    dark: bool  # the background is dark enough to want white text


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _rgb(color: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*color)


def sequential_color(value: float) -> tuple[str, bool]:
    """value in [0, 1] -> blue through white to red; NaN (no prediction) -> no colour."""
    if math.isnan(value):
        return "transparent", False
    value = min(max(value, 0.0), 1.0)
    color = _mix(BLUE, WHITE, value * 2) if value < 0.5 else _mix(WHITE, RED, value * 2 - 1)
    return _rgb(color), abs(value - 0.5) > 0.35


def diverging_color(value: float, scale: float) -> tuple[str, bool]:
    """A signed activation -> blue (negative), white (0), red (positive), saturating at scale."""
    if scale <= 0 or math.isnan(value):
        return _rgb(WHITE), False
    return sequential_color(0.5 + 0.5 * max(-1.0, min(1.0, value / scale)))


def format_predictions(capture: Capture, position: int) -> str:
    """The model's top guesses after `position`, as `word 0.31, word 0.12, ...`."""
    guesses = [
        f"{capture.vocabulary[i]} {math.exp(lp):.3f}"
        for i, lp in zip(capture.top_ids[position], capture.top_log_probs[position])
        if i >= 0
    ]
    return ", ".join(guesses)


def token_probabilities(capture: Capture) -> np.ndarray:
    """p(token t | tokens before t), NaN for the first token, which nothing predicts."""
    probs = np.full(capture.n_tokens, np.nan)  # (T,)
    probs[1:] = np.exp(capture.log_prob_next[:-1].astype(np.float64))
    return probs


def expectancy_cells(capture: Capture, start: int, stop: int) -> list[TokenCell]:
    """Tokens start..stop-1 coloured by the probability the model gave each of them."""
    probs = token_probabilities(capture)
    cells = []
    for t in range(start, stop):
        color, dark = sequential_color(float(probs[t]))
        if t == 0:
            title = f"{capture.tokens[t]}: first token, not predicted"
        else:
            title = (
                f"{capture.tokens[t]}: p = {probs[t]:.4f}\n"
                f"expected: {format_predictions(capture, t - 1)}"
            )
        cells.append(TokenCell(capture.tokens[t], color, title, t, capture.tokens[t] == EOS, dark))
    return cells


def activation_cells(
    tokens: list[str], values: np.ndarray, start: int, stop: int, scale: float, label: str
) -> list[TokenCell]:
    """Tokens start..stop-1 coloured by one neuron's activation `values` (T,), centred at 0."""
    cells = []
    for t in range(start, stop):
        value = float(values[t])
        color, dark = diverging_color(value, scale)
        cells.append(
            TokenCell(tokens[t], color, f"{tokens[t]}: {label} = {value:+.4f}", t,
                      tokens[t] == EOS, dark)
        )
    return cells


def page_bounds(n_tokens: int, tokens_per_page: int) -> list[tuple[int, int]]:
    """Split a long text into pages of at most `tokens_per_page` tokens."""
    return [(start, min(start + tokens_per_page, n_tokens))
            for start in range(0, n_tokens, tokens_per_page)]
