"""The planted word classes show up as clusters of the demo model's layer-1 hidden state.

The built-in corpus draws each word class's members uniformly in the same contexts, so a
trained model's states should group tokens by class (issue 4). The classes come from the
generator's ground truth, recomputed from the tokens alone; purity and coverage are counted
here with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.analysis.clustering import LINKAGES
from reportgen.analysis.embedding import EmbeddingOptions, embed
from reportgen.capture.core import Capture
from reportgen.training import synthetic, synthetic_grammar

MIN_PURITY = 0.7  # share of the cluster's tokens that belong to the class
MIN_COVERAGE = 0.5  # share of the class's sampled tokens that the cluster holds


def purity_and_coverage(labels: np.ndarray, in_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each cluster 0..K-1: the share of it in the class, and its share of the class."""
    sizes = np.bincount(labels)  # (K,)
    inside = np.bincount(labels, weights=in_class.astype(np.float64), minlength=len(sizes))
    return inside / sizes, inside / in_class.sum()


@pytest.mark.slow
def test_a_planted_class_is_one_cluster_of_layer_1_h(demo_capture: Capture) -> None:
    # the report's default sample and clusters; one thread, as the machine is shared
    result = embed(demo_capture, 1, "h", EmbeddingOptions(), n_jobs=1)
    classes = np.array(synthetic.ground_truth(result.tokens).word_class)  # (N,)
    table, found = [], []
    for linkage in LINKAGES:
        for name in synthetic_grammar.WORD_CLASSES:
            in_class = classes == name
            if not in_class.any():
                continue
            purity, coverage = purity_and_coverage(result.labels[linkage], in_class)
            best = int(np.argmax(purity * coverage))
            table.append(f"{linkage} {name}: best cluster {best}, purity {purity[best]:.2f}, "
                         f"holds {coverage[best]:.2f} of {in_class.sum()}")
            if np.any((purity >= MIN_PURITY) & (coverage >= MIN_COVERAGE)):
                found.append((linkage, name))
    assert found, "no planted class forms a cluster:\n" + "\n".join(table)
