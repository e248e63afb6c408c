"""The models' units aligned before any model folder of a multi-model `reportgen report` is
written, so that each unit page can list its matches in the other models.

`multi_report.build_reports` analyses each model once; what the alignment and the links need of
each (a `FirstLook`: the figures, the states at the sampled positions, the units that get a
page; about 21 MB for a 2x650 model at 4,000 positions) is taken from its report, the units
are aligned once, as the comparison page aligns them, and that alignment serves both the unit
pages (`OtherModels`) and the comparison page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reportgen.analysis.alignment import OtherModels, align_models
from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.comparison import ModelFailure, ModelFigures, compare
from reportgen.analysis.state_sample import StateSample, sample_states
from reportgen.capture.core import StateKey
from reportgen.render.comparable import figures_of
from reportgen.render.pages import SiteOptions


@dataclass
class FirstLook:
    """What the alignment and the links need of one model."""

    figures: ModelFigures
    sample: StateSample
    paged: dict[StateKey, list[int]]  # the units its report gives a page to


def first_look(report: ModelReport, options: SiteOptions) -> FirstLook:
    """`options.comparison_positions` sampled positions, as `data/comparable/` keeps them."""
    assert report.paged is not None
    return FirstLook(figures_of(report), sample_states(report.capture,
                                                       options.comparison_positions),
                     report.paged.units)


def other_models(looks: Sequence[FirstLook],
                 failures: Sequence[ModelFailure] = ()) -> dict[str, OtherModels]:
    """Each model's view of the others: every pair aligned in the comparison page's order."""
    order = [m.name for m in compare([look.figures for look in looks], failures).models]
    by_name = {look.figures.name: look for look in looks}
    labels = {(name, s.key): s.labels for name in order for s in by_name[name].figures.states}
    alignment = align_models({name: by_name[name].sample for name in order}, labels)
    paged = {name: by_name[name].paged for name in order}
    return {name: OtherModels(name, alignment, paged) for name in order}
