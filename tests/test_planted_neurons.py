"""The planted quote state shows up as a labelled, top-ranked neuron of the demo model's layer 1.

The built-in corpus plants quoted titles whose state decides the next word (issue 3). The demo
model trained on it must have, in layer 1 (h or c), a neuron that the concept analysis labels
`in_quotes` with an AUROC of at least 0.9 (high inside quotes) and that the KL ranking puts in
the top 10% of its layer and state.
"""

from __future__ import annotations

import pytest

from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.distributions import analyse_distributions
from reportgen.capture import Capture
from reportgen.features import token_features

MIN_AUROC = 0.9
TOP_SHARE = 0.1  # of the layer and state's KL ranking


def found_quote_neurons(distributions, concepts, layer: int) -> tuple[list[str], list[str]]:
    """Layer `layer`'s neurons meeting the criterion, and every in_quotes neuron, as text."""
    found, labelled = [], []
    for state in ("h", "c"):
        stats, state_concepts = distributions[(layer, state)], concepts[(layer, state)]
        for neuron, label in enumerate(state_concepts.label):
            if label != "in_quotes":
                continue
            auroc, rank = state_concepts.label_auroc[neuron], stats.rank[neuron]
            line = f"{stats.name} neuron {neuron}: AUROC {auroc:.3f}, rank {rank} of {stats.n_neurons}"
            labelled.append(line)
            if auroc >= MIN_AUROC and rank <= TOP_SHARE * stats.n_neurons:
                found.append(line)
    return found, labelled


@pytest.mark.slow
def test_a_layer_1_neuron_is_a_top_ranked_inside_quotes_unit(demo_capture: Capture) -> None:
    distributions = analyse_distributions(demo_capture)
    concepts = analyse_concepts(demo_capture, token_features(demo_capture.tokens))
    found, labelled = found_quote_neurons(distributions, concepts, layer=1)
    assert found, "no layer-1 in_quotes neuron in the top 10%:\n" + "\n".join(labelled or ["none labelled"])
