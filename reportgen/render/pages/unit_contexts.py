"""The text around a unit's values, for its page: heatmap excerpts around its highest and
lowest values, and the positions where it is highest with the tokens either side.

Apart from `pages/neurons.py` because the dynamics and effects sections of the same page show
contexts too, with the same widths, and must not import the page that includes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reportgen.render.heatmap import TokenCell, activation_cells

EXCERPTS = 2  # heatmap excerpts each for the highest and for the lowest values
EXCERPT_RADIUS = 12  # tokens either side of an excerpt's centre
TOP_CONTEXTS = 10  # rows of the top-contexts table
CONTEXT_BEFORE = 8  # tokens shown before a context's token: the LSTM reads left to right
CONTEXT_AFTER = 4


@dataclass(frozen=True)
class Excerpt:
    """A stretch of text around one position, coloured by the neuron's activation."""

    centre: int
    value: float
    cells: list[TokenCell]


@dataclass(frozen=True)
class Context:
    """A position and the unit's value there, with the tokens around it."""

    position: int
    value: float
    before: str
    token: str
    after: str


def context_at(tokens: list[str], position: int, value: float) -> Context:
    """CONTEXT_BEFORE tokens, the token at `position` and CONTEXT_AFTER tokens."""
    return Context(position, value, " ".join(tokens[max(0, position - CONTEXT_BEFORE) : position]),
                   tokens[position], " ".join(tokens[position + 1 : position + 1 + CONTEXT_AFTER]))


def excerpt_centres(values: np.ndarray, count: int, radius: int, highest: bool) -> list[int]:
    """Up to `count` positions of the highest (or lowest) values whose excerpts do not overlap.

    values: (T,) one neuron's activations. Ties keep text order, so the choice is deterministic.
    """
    order = np.argsort(-values if highest else values, kind="stable")  # (T,)
    blocked = np.zeros(len(values), dtype=bool)
    centres: list[int] = []
    for position in order:
        if blocked[position]:
            continue
        centres.append(int(position))
        if len(centres) == count:
            break
        blocked[max(0, position - 2 * radius) : position + 2 * radius + 1] = True
    return centres


def excerpts(tokens: list[str], values: np.ndarray, highest: bool, scale: float) -> list[Excerpt]:
    """The heatmaps around the highest (or lowest) values, coloured on one scale for the page."""
    centres = excerpt_centres(values, EXCERPTS, EXCERPT_RADIUS, highest)
    return [
        Excerpt(centre, float(values[centre]),
                activation_cells(tokens, values, max(0, centre - EXCERPT_RADIUS),
                                 min(len(tokens), centre + EXCERPT_RADIUS + 1), scale))
        for centre in centres
    ]


def top_contexts(tokens: list[str], values: np.ndarray, count: int = TOP_CONTEXTS) -> list[Context]:
    """The positions of the `count` highest values, highest first, with their neighbours."""
    positions = np.argsort(-values, kind="stable")[:count]
    return [context_at(tokens, int(t), float(values[t])) for t in positions]
