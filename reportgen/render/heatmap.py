"""Token heatmaps: the colour and tooltip of every token, computed here, drawn by templates.

A heatmap is a list of `TokenCell`s; the template writes each as an inline-styled span, so the
page needs no script to show it and a copy-pasted excerpt keeps its colours.

The expectancy heatmap colours p(word) on a log scale by default: a real model gives most
words p < 0.05, so on a linear scale most of a page is one shade of blue. log10 p is mapped
from LOG_FLOOR (p = 1e-5, and below, deep blue) through white (p ~ 0.003) to 0 (p = 1, deep
red); `scale="linear"` keeps the thesis's linear p. Legends are gradients drawn from the same
colour function, with ticks, so the page and the figures cannot drift from the cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reportgen.capture.core import Capture
from reportgen.inputs.corpus import EOS

# Blue (low) to white to red (high), ColorBrewer RdBu end points.
BLUE = (33, 102, 172)
WHITE = (247, 247, 247)
RED = (178, 24, 43)
SCALES = ("log", "linear")  # how p(word) is coloured on the expectancy pages
LOG_FLOOR = -5.0  # log10 p at the blue end of the log scale
GRADIENT_STOPS = 11  # colour stops of a legend's gradient
SURPRISING = 25  # tokens listed as the most surprising


@dataclass(frozen=True)
class TokenCell:
    """One token as shown: its text (untrusted), background colour and tooltip."""

    text: str
    color: str  # CSS colour, e.g. "#2166ac"
    title: str  # tooltip, plain text
    position: int
    line_end: bool  # `<eos>`: the template breaks the line after it
    dark: bool  # the background is dark enough to want white text


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _rgb(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


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


def signed(value: float) -> str:
    """An activation with its sign and 4 decimals (+0.0312), as its heatmap tooltip shows it;
    the templates write values beside the heatmaps with the same filter, `|signed`."""
    return f"{value:+.4f}"


def per_mille(log_prob: float) -> int:
    """A guess's probability in thousandths, as its tooltip shows it (0.129)."""
    return round(1000 * math.exp(log_prob))


def format_predictions(capture: Capture, position: int) -> str:
    """The model's top guesses after `position`, as `word 0.310, word 0.120, ...`."""
    guesses = [
        f"{capture.vocabulary[i]} {per_mille(lp) / 1000:.3f}"
        for i, lp in zip(capture.top_ids[position], capture.top_log_probs[position])
        if i >= 0
    ]
    return ", ".join(guesses)


def rounded_probability(prob: float) -> float:
    """p to 3 significant digits: what a tooltip needs, in a third of the characters."""
    return float(f"{prob:.3g}")


def shown_probability(prob: float) -> str:
    """p as a tooltip shows it: 4 decimals, or 2 significant digits below 0.001 (1.6e-05).
    report.js writes the same text from an expectancy page's table."""
    return f"{prob:.4f}" if prob >= 0.001 else f"{prob:.1e}"


def scale_position(prob: float, scale: str = "log") -> float:
    """p in [0, 1] -> its place on the colour scale, 0 (blue) to 1 (red); NaN stays NaN."""
    if math.isnan(prob):
        return prob
    if scale == "linear":
        return prob
    if prob <= 0:
        return 0.0
    return min(max((math.log10(prob) - LOG_FLOOR) / -LOG_FLOOR, 0.0), 1.0)


@dataclass(frozen=True)
class Legend:
    """A gradient with labelled ticks, in the colours the cells use."""

    gradient: str  # CSS linear-gradient(...)
    ticks: list[tuple[float, str]]  # (percent from the left, label)
    low: str  # what the left end means
    high: str


def gradient_css() -> str:
    stops = [f"{sequential_color(i / (GRADIENT_STOPS - 1))[0]} {100 * i / (GRADIENT_STOPS - 1):g}%"
             for i in range(GRADIENT_STOPS)]
    return f"linear-gradient(to right, {', '.join(stops)})"


def expectancy_legend(scale: str = "log") -> Legend:
    if scale == "linear":
        ticks = [(100 * p, f"{p:g}") for p in (0, 0.25, 0.5, 0.75, 1)]
        return Legend(gradient_css(), ticks, "unexpected", "expected")
    exponents = range(int(LOG_FLOOR), 1)
    ticks = [(100 * scale_position(10.0 ** e), power_of_ten(e)) for e in exponents]
    return Legend(gradient_css(), ticks, f"unexpected (p ≤ {power_of_ten(int(LOG_FLOOR))})",
                  "expected (p = 1)")


def power_of_ten(exponent: int) -> str:
    """-3 -> "10⁻³", 0 -> "1", in Unicode superscripts so that a legend needs no markup."""
    if exponent == 0:
        return "1"
    return "10" + str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def activation_legend(scale: float) -> Legend:
    ticks = [(0.0, f"−{scale:.3f}"), (50.0, "0"), (100.0, f"+{scale:.3f}")]
    return Legend(gradient_css(), ticks, "low", "high")


def colour_shares(probs: np.ndarray, scale: str = "log", bands: int = 10) -> np.ndarray:
    """(bands,) share of the predicted tokens whose colour falls in each tenth of the scale:
    how evenly a scale spreads a text's words over its colours."""
    positions = np.array([scale_position(float(p), scale) for p in probs if not math.isnan(p)])
    if positions.size == 0:
        return np.zeros(bands)
    counts = np.bincount(np.minimum((positions * bands).astype(int), bands - 1), minlength=bands)
    return counts / positions.size


def token_probabilities(capture: Capture) -> np.ndarray:
    """p(token t | tokens before t), NaN for the first token, which nothing predicts."""
    probs = np.full(capture.n_tokens, np.nan)  # (T,)
    probs[1:] = np.exp(capture.log_prob_next[:-1].astype(np.float64))
    return probs


def expectancy_title(capture: Capture, probs: np.ndarray, t: int) -> str:
    if t == 0:
        return f"{capture.tokens[t]}: first token, not predicted"
    shown = shown_probability(rounded_probability(float(probs[t])))
    return f"{capture.tokens[t]}: p = {shown}\nexpected: {format_predictions(capture, t - 1)}"


def expectancy_cells(capture: Capture, start: int, stop: int, scale: str = "log",
                     titles: bool = True) -> list[TokenCell]:
    """Tokens start..stop-1 coloured by the probability the model gave each of them.

    `titles=False` leaves the tooltips out, for pages that carry them as `expectancy_tips`.
    """
    probs = token_probabilities(capture)
    cells = []
    for t in range(start, stop):
        color, dark = sequential_color(scale_position(float(probs[t]), scale))
        title = expectancy_title(capture, probs, t) if titles else ""
        cells.append(TokenCell(capture.tokens[t], color, title, t, capture.tokens[t] == EOS, dark))
    return cells


def expectancy_tips(capture: Capture, start: int, stop: int) -> dict[str, list]:
    """The tooltips of tokens start..stop-1 in about a fifth of their text's bytes.

    A tooltip names the token, its p and the model's five best guesses. Written out on every
    span, that was 180 bytes a token, the bulk of an expectancy page. Here each word is written
    once per page, in `words`, and each token is one row of numbers: `[token]` for the first
    token of the text, which nothing predicted, else `[token, p, guess, per_mille, guess,
    per_mille, ...]`, with word indices into `words`, p to 3 significant digits and each guess's
    probability in thousandths, as the tooltip shows it. report.js writes the tooltip's text.
    """
    probs = token_probabilities(capture)  # (T,)
    index: dict[str, int] = {}

    def word_id(word: str) -> int:
        return index.setdefault(word, len(index))

    rows = []
    for t in range(start, stop):
        row: list[float] = [word_id(capture.tokens[t])]
        if t > 0:
            row.append(rounded_probability(float(probs[t])))
            for guess, log_prob in zip(capture.top_ids[t - 1], capture.top_log_probs[t - 1]):
                if guess >= 0:
                    row += [word_id(capture.vocabulary[guess]), per_mille(float(log_prob))]
        rows.append(row)
    return {"words": list(index), "rows": rows}


def activation_cells(
    tokens: list[str], values: np.ndarray, start: int, stop: int, scale: float
) -> list[TokenCell]:
    """Tokens start..stop-1 coloured by one neuron's activation `values` (T,), centred at 0.

    The tooltip is the value alone: the word is the one under the pointer, and the neuron is
    the page's, so naming both on each of a page's 186 words made up a third of the page.
    """
    cells = []
    for t in range(start, stop):
        value = float(values[t])
        color, dark = diverging_color(value, scale)
        cells.append(TokenCell(tokens[t], color, signed(value), t, tokens[t] == EOS, dark))
    return cells


def page_bounds(n_tokens: int, tokens_per_page: int) -> list[tuple[int, int]]:
    """Split a long text into pages of at most `tokens_per_page` tokens."""
    return [(start, min(start + tokens_per_page, n_tokens))
            for start in range(0, n_tokens, tokens_per_page)]


@dataclass(frozen=True)
class Surprise:
    """One of the tokens the model expected least, and the page that shows it."""

    position: int
    token: str
    prob: float
    context: str  # the tokens just before it
    href: str


def most_surprising(capture: Capture, page_of: list[str], tokens_per_page: int,
                    shown: int | None = None, count: int = SURPRISING,
                    before: int = 6) -> list[Surprise]:
    """The `count` tokens among the first `shown` (default all) with the lowest p(word), lowest
    first, each linked to its place on the expectancy page `page_of[position // tokens_per_page]`
    (anchor `#t{position}`)."""
    probs = token_probabilities(capture)[:shown]  # (shown,)
    order = np.argsort(np.nan_to_num(probs, nan=np.inf), kind="stable")[:count]
    return [
        Surprise(int(t), capture.tokens[t], float(probs[t]),
                 " ".join(capture.tokens[max(0, t - before) : t]),
                 f"{page_of[t // tokens_per_page]}#t{t}")
        for t in order if not math.isnan(probs[t])
    ]
