"""Which units get a page: decided here, from the analysis results, so that analyses that run
only on paged units (ablation, output effects) and the pages that show them agree, and no
analysis has to import the pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reportgen.capture import StateKey

if TYPE_CHECKING:
    from reportgen.analysis.concepts import ConceptResult
    from reportgen.analysis.distributions import DistributionResult


def top_units(distributions: DistributionResult, top_n: int) -> dict[StateKey, list[int]]:
    """The top `top_n` units by KL rank, not near-zero, of each layer and state."""
    return {key: [int(n) for n in stats.top(top_n)]
            for key, stats in distributions.states.items()}


def paged_units(distributions: DistributionResult, concepts: ConceptResult | None,
                top_n: int) -> dict[StateKey, list[int]]:
    """The top `top_n` by KL of each layer and state, then the concept index's other units by
    KL rank, so that every unit the concepts page lists has a page."""
    chosen = top_units(distributions, top_n)
    if concepts is None:
        return chosen
    for entry in concepts.index():
        if entry.neuron not in chosen[entry.key]:
            chosen[entry.key].append(entry.neuron)
    for key, units in chosen.items():
        rank = distributions.states[key].rank
        tail = sorted(units[top_n:], key=lambda n: int(rank[n]))
        chosen[key] = units[:top_n] + tail
    return chosen
