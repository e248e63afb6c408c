"""A unit page's "In the other models" section, on a multi-model report.

For every other model: the unit's one-to-one (Hungarian) match and its best match (highest
|r|), each linked to that unit's page when the other model's report has one, else to the
unit's row of the other model's alignment page, which lists every unit. The paths are relative
to the site root (the template puts `root` before them), and the paths of the alignment pages
are defined here, so that `pages.neurons` can use them without importing `pages.alignment`
(which imports `pages.neurons`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reportgen.analysis.alignment import UNMATCHED, UnitAlignment
from reportgen.analysis.bundle import ModelReport
from reportgen.capture.core import StateKey, state_name

FOLDER = "alignment"


def alignment_prefix(model: str) -> str:
    """The start of the path of a model's alignment pages; the state's name and `.html` end it."""
    return f"{FOLDER}/{model}-"


def alignment_page_path(model: str, key: StateKey) -> str:
    return f"{alignment_prefix(model)}{state_name(key)}.html"


@dataclass(frozen=True)
class MatchLink:
    """One unit of another model and its signed r with this unit."""

    unit: int
    r: float
    href: str  # from the site root: its unit page, else its row of its alignment page


@dataclass(frozen=True)
class OtherModelMatch:
    model: str
    matched: MatchLink | None  # None when the other model has fewer units and none was left
    best: MatchLink


def match_link(model: str, key: StateKey, unit: int, r: float, paged: dict[StateKey, list[int]],
               page_path: Callable[[StateKey, int], str]) -> MatchLink:
    if unit in paged.get(key, ()):
        return MatchLink(unit, r, f"{model}/{page_path(key, unit)}")
    return MatchLink(unit, r, f"{alignment_page_path(model, key)}#unit-{unit}")


def other_model_match(model: str, key: StateKey, units: UnitAlignment, unit: int,
                      paged: dict[StateKey, list[int]],
                      page_path: Callable[[StateKey, int], str]) -> OtherModelMatch:
    matched = int(units.matched[unit])
    return OtherModelMatch(
        model,
        None if matched == UNMATCHED else match_link(
            model, key, matched, float(units.matched_r[unit]), paged, page_path),
        match_link(model, key, int(units.best[unit]), float(units.best_r[unit]), paged,
                   page_path))


def unit_matches(report: ModelReport, key: StateKey, unit: int,
                 page_path: Callable[[StateKey, int], str]) -> list[OtherModelMatch] | None:
    """The unit's matches in every other model, or None on a report of one model.
    `page_path` is `pages.neurons.neuron_page_path`, passed in to keep the imports one way."""
    others = report.other_models
    if others is None:
        return None
    return [other_model_match(model, key, units, unit, others.paged.get(model, {}), page_path)
            for model, units in others.matches(key)]
