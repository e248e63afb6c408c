"""The concepts section: `concepts.html`, which answers "which units track X?".

For each token feature (the built-in ones, the word classes and the user's own), the units of
every layer and state farthest from chance, high and low, each with its AUROC, its within-word
AUROC, its KL rank and a link to its page. Every unit listed here has a page: the neurons
section pages them beside the top units by KL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.concepts import INDEX_MIN_DISTANCE, INDEX_UNITS
from reportgen.capture.core import state_name
from reportgen.render.pages import Page, Section, SiteOptions
from reportgen.render.pages.neurons import neuron_page_path

PAGE = "concepts.html"


def section(report: ModelReport) -> Section | None:
    if report.concepts is None or report.distributions is None:
        return None
    return Section("concepts", "Concepts", PAGE,
                   "Which units track each token feature and word class: AUROC, within-word "
                   "AUROC and KL rank of the best units of every layer and state.")


@dataclass(frozen=True)
class IndexRow:
    state: str  # "L1-h"
    neuron: int
    href: str
    direction: str  # "high" or "low"
    auroc: float
    within: float  # NaN where undefined
    rank: int  # KL rank in its layer and state
    n_neurons: int
    labelled: bool


@dataclass(frozen=True)
class FeatureBlock:
    """One feature's part of the page."""

    name: str
    description: str
    share: float  # share of tokens with the feature
    word_decided: bool
    n_labelled: int  # units labelled with it, over every layer and state
    rows: list[IndexRow]


def feature_blocks(report: ModelReport) -> list[FeatureBlock]:
    concepts, distributions, features = report.concepts, report.distributions, report.features
    assert concepts is not None and distributions is not None and features is not None
    entries = concepts.index()
    blocks = []
    for f, name in enumerate(concepts.features):
        rows = [
            IndexRow(state_name(e.key), e.neuron, neuron_page_path(e.key, e.neuron),
                     "high" if e.high else "low", e.auroc, e.within,
                     int(distributions.states[e.key].rank[e.neuron]),
                     distributions.states[e.key].n_neurons, e.labelled)
            for e in entries if e.feature == name
        ]
        labelled = sum(name in dict(labels) for state in concepts.states.values()
                       for labels in state.labels)
        decided = any(bool(state.word_decided[f]) for state in concepts.states.values())
        blocks.append(FeatureBlock(name, features.description(name),
                                   float(np.mean(features.values[name])), decided, labelled, rows))
    return blocks


def pages(report: ModelReport, options: SiteOptions) -> list[Page]:
    assert report.concepts is not None
    return [Page(
        path=PAGE,
        template="concepts.html",
        title="Concepts",
        section="concepts",
        context={
            "blocks": feature_blocks(report),
            "threshold": report.concepts.threshold,
            "within_threshold": report.concepts.within_threshold,
            "word_share": report.concepts.word_share,
            "per_direction": INDEX_UNITS,
            "min_distance": INDEX_MIN_DISTANCE,
        },
    )]


def export(report: ModelReport, data: Path) -> None:
    """The figures of this page are columns of neurons.csv, which the neurons section writes."""
