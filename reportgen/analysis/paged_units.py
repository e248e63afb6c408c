"""Which units get a page: decided here once, from the analysis results, and stored on the
report bundle (`ModelReport.paged`), so that the analyses that run only on paged units
(correlations, ablation, output effects) and every page that links a unit agree. When each
reader decided for itself, a real 2x200 model's overview linked a unit that no page was written
for: its Findings named the best-ranked labelled unit, which neither the top N by KL nor the
concept index held.

A unit has a page when it is among the top N by KL of its layer and state (the ranking table),
when the concept index lists it, when the overview names it as a finding, or when the
number-unit finder found that ablating it costs more agreement than any random unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reportgen.capture.core import StateKey

if TYPE_CHECKING:
    from reportgen.analysis.concepts import ConceptResult
    from reportgen.analysis.distributions import DistributionResult
    from reportgen.analysis.number_units import NumberUnitResult


@dataclass(frozen=True)
class UnitFinding:
    """The labelled unit of a feature that ranks best by KL, as a share of its layer and state:
    the unit the overview names for that feature."""

    feature: str
    key: StateKey
    neuron: int
    n_labelled: int  # units labelled with the feature, across layers and states


@dataclass(frozen=True)
class PagedUnits:
    """The units that get a page, and why."""

    top_n: int  # --top-neurons
    top: dict[StateKey, list[int]]  # the top N by KL, not near-zero: the ranking table
    units: dict[StateKey, list[int]]  # every paged unit: the top N first, the rest by KL rank
    findings: list[UnitFinding] = field(default_factory=list)  # in feature order

    def has_page(self, key: StateKey, neuron: int) -> bool:
        return neuron in self.units.get(key, ())


def top_units(distributions: DistributionResult, top_n: int) -> dict[StateKey, list[int]]:
    """The top `top_n` units by KL rank, not near-zero, of each layer and state."""
    return {key: [int(n) for n in stats.top(top_n)]
            for key, stats in distributions.states.items()}


def unit_findings(distributions: DistributionResult,
                  concepts: ConceptResult | None) -> list[UnitFinding]:
    """For each feature some unit is labelled with, the labelled unit that ranks best by KL (as
    a share of its layer and state, so that layers of different widths compare)."""
    if concepts is None:
        return []
    findings = []
    for feature in concepts.features:
        candidates = [
            (distributions.states[key].rank[neuron] / len(state.labels), key, neuron)
            for key, state in concepts.states.items()
            for neuron, labels in enumerate(state.labels) if feature in dict(labels)
        ]
        if candidates:
            _, key, neuron = min(candidates)
            findings.append(UnitFinding(feature, key, int(neuron), len(candidates)))
    return findings


def decide_paged_units(distributions: DistributionResult, concepts: ConceptResult | None,
                       top_n: int, number_units: NumberUnitResult | None = None) -> PagedUnits:
    """The top `top_n` by KL of each layer and state, then the concept index's, the findings'
    and the number-unit finder's other units by KL rank."""
    top = top_units(distributions, top_n)
    findings = unit_findings(distributions, concepts)
    wanted = [(entry.key, entry.neuron) for entry in concepts.index()] if concepts else []
    wanted += [(finding.key, finding.neuron) for finding in findings]
    wanted += number_units.number_units() if number_units is not None else []
    extra: dict[StateKey, set[int]] = {key: set() for key in top}
    for key, neuron in wanted:
        if neuron not in top[key]:
            extra[key].add(neuron)
    units = {key: top[key] + sorted(extra[key],
                                    key=lambda n: int(distributions.states[key].rank[n]))
             for key in top}
    return PagedUnits(top_n, top, units, findings)
