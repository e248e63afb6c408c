"""The planted quote state shows up in the demo model: a layer-1 unit that remembers it, and a
labelled, top-ranked quote unit.

The built-in corpus plants quoted titles whose state decides the next word (issue 3). The demo
model trained on it must have:
- in layer 1 (h or c), a unit whose activation tracks the quote state: |AUROC - 0.5| >= 0.3
  and a within-word AUROC on the same side at least 0.2 from chance, so that it is memory and
  not a reaction to the title words, which only occur inside quotes;
- in some layer, a unit labelled `in_quotes` (both AUROCs pass the label rule) that the KL
  ranking puts in the top 10% of its layer and state.

The demo's training is seeded, but its floating point differs between CPUs, and so does the
model. Measured: on an AMD EPYC, L1-c unit 17 had AUROC 0.971 at KL rank 9 of 128; on an Intel
Xeon (AVX-512), L1-c unit 17 had AUROC 0.859 and within-word AUROC 0.734 at rank 42, and L2-h
unit 76 was labelled in_quotes (AUROC 0.958, within-word 0.994) at rank 11. The thresholds
hold on both.
"""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.distributions import analyse_distributions
from reportgen.capture.core import Capture
from reportgen.inputs.features import token_features

LAYER_1_DISTANCE = 0.3  # |AUROC - 0.5| of layer 1's quote unit
LAYER_1_WITHIN_DISTANCE = 0.2  # |within-word AUROC - 0.5|, on the same side
TOP_SHARE = 0.1  # of the layer and state's KL ranking


@pytest.fixture(scope="module")
def analysed(demo_capture: Capture):
    return analyse_distributions(demo_capture), analyse_concepts(
        demo_capture, token_features(demo_capture.tokens))


def quote_figures(distributions, concepts, key) -> list[tuple[int, float, float, int]]:
    """(unit, AUROC, within-word AUROC, KL rank) of every unit of one layer and state."""
    state = concepts[key]
    q = state.features.index("in_quotes")
    return [(n, state.auroc[n, q], state.within[n, q], int(distributions[key].rank[n]))
            for n in range(len(state.labels))]


@pytest.mark.slow
def test_a_layer_1_unit_remembers_the_quote_state(demo_capture: Capture, analysed) -> None:
    distributions, concepts = analysed
    found = []
    for state in ("h", "c"):
        for n, auroc, within, rank in quote_figures(distributions, concepts, (1, state)):
            side = np.sign(auroc - 0.5)
            if (abs(auroc - 0.5) >= LAYER_1_DISTANCE and np.sign(within - 0.5) == side
                    and abs(within - 0.5) >= LAYER_1_WITHIN_DISTANCE):
                found.append(f"L1-{state} unit {n}: AUROC {auroc:.3f}, within {within:.3f}, rank {rank}")
    assert found, "no layer-1 unit tracks the quote state"


@pytest.mark.slow
def test_a_unit_labelled_in_quotes_ranks_in_the_top_tenth(demo_capture: Capture, analysed) -> None:
    distributions, concepts = analysed
    labelled = []
    for key, state in concepts.states.items():
        for n, labels in enumerate(state.labels):
            if "in_quotes" in dict(labels):
                labelled.append((int(distributions[key].rank[n]), key, n, distributions[key].n_neurons))
    top = [item for item in labelled if item[0] <= TOP_SHARE * item[3]]
    assert top, f"no in_quotes unit in the top 10%: {sorted(labelled)[:5]}"
