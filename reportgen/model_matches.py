"""The first pass of a multi-model `reportgen report`: align the models' units before any
model folder is written, so that each unit page can list its matches in the other models.

`multi_report.build_reports` analyses each model once and keeps only what the alignment and
the links need (a `FirstLook`: the figures, the states at the sampled positions, the units that
get a page; about 21 MB for a 2x650 model at 4,000 positions), then frees its capture, so memory
stays that of one model. The units are aligned as the comparison page aligns them. The second
pass analyses each model again, which reads the capture and analysis caches (a recomputation
under --no-cache), and writes its folder with its `OtherModels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reportgen.analysis.alignment import OtherModels, align_models
from reportgen.analysis.comparison import ModelFailure, ModelFigures, compare, figures_of
from reportgen.analysis.state_sample import StateSample, sample_states
from reportgen.capture import StateKey
from reportgen.pages import SiteOptions
from reportgen.results import ModelReport


@dataclass
class FirstLook:
    """What the first pass keeps of one model, and how its analysis went (the second pass is
    a read of the caches, and the model's report should tell the first one's times)."""

    figures: ModelFigures
    sample: StateSample
    paged: dict[StateKey, list[int]]  # the units its report gives a page to
    timings: dict[str, float]
    capture_reused: bool
    analyses_reused: list[str]


def first_look(report: ModelReport, options: SiteOptions) -> FirstLook:
    """`options.comparison_positions` sampled positions, as `data/comparable/` keeps them."""
    assert report.paged is not None
    return FirstLook(figures_of(report), sample_states(report.capture,
                                                       options.comparison_positions),
                     report.paged.units,
                     dict(report.timings),
                     report.capture_reused, list(report.analyses_reused))


def other_models(looks: Sequence[FirstLook],
                 failures: Sequence[ModelFailure] = ()) -> dict[str, OtherModels]:
    """Each model's view of the others: every pair aligned in the comparison page's order."""
    order = [m.name for m in compare([look.figures for look in looks], failures).models]
    by_name = {look.figures.name: look for look in looks}
    labels = {(name, s.key): s.labels for name in order for s in by_name[name].figures.states}
    alignment = align_models({name: by_name[name].sample for name in order}, labels)
    paged = {name: by_name[name].paged for name in order}
    return {name: OtherModels(name, alignment, paged) for name in order}


def with_first_pass(report: ModelReport, look: FirstLook, others: OtherModels) -> ModelReport:
    """The second pass's report, with the other models and the first pass's provenance."""
    report.other_models = others
    report.timings.clear()
    report.timings.update(look.timings)
    report.capture_reused = look.capture_reused
    report.analyses_reused = list(look.analyses_reused)
    return report
