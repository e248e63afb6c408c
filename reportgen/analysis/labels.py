"""Concept labels: which features name a unit, from its AUROC and within-word AUROC for each
feature (DESIGN.md 3.4). `concepts` computes the figures; this module holds the rule.

**Labels.** A neuron gets every feature as a label whose |AUROC - 0.5| is at least the
threshold (0.4: AUROC >= 0.9 or <= 0.1) and, unless the word decides the feature, whose
within-word AUROC lies at least `within_threshold` from 0.5 on the same side. Labels are ordered
strongest first, by |AUROC - 0.5|, equal distances in feature order. AUROCs below 0.5 mean the
neuron is low on the feature.

**Labels of features the word decides carry information only among the few.** Such a
feature (a word class: months, `=`, pronouns) is a handful of word types, and a unit's AUROC
for it only says where the unit's values on those words fall in its own distribution. A real
model's state moves on nearly every unit when it reads a rare, distinctive word: on a 2x200
WikiText-2 model, 146 of L1-h's 200 units passed the threshold for `is_heading_markup` and
152 for `is_month`, so the label told nothing about the unit. Such a label therefore also needs
the unit to be among the `word_share` (10%) of its layer and state's units farthest from
chance for that feature: at most max(1, floor(word_share H)) units may be at least as far
from 0.5 as it is, itself included. Ties at the cut are all left out rather than picked by
unit number, so when more units than that separate the words perfectly, none is labelled:
none stands out. Features the word does not decide keep the AUROC and within-word rule alone;
their within-word test already asks for memory rather than a reaction to the word.
"""

from __future__ import annotations

import math

import numpy as np

from reportgen.errors import ReportgenError

LABEL_THRESHOLD = 0.4
WITHIN_THRESHOLD = 0.3  # within-word |AUROC - 0.5| a label of a feature the word does not decide
WORD_SHARE = 0.1  # of a layer's units, at most this share labelled with a feature the word decides
# AUROCs are ratios of integers and thresholds decimals, so float rounding can put an AUROC
# that is exactly at the threshold a hair below it (19/20 - 0.5 < 0.45); this slack keeps it.
LABEL_TOLERANCE = 1e-9

Label = tuple[str, float]  # (feature, AUROC)


def check_word_share(word_share: float) -> None:
    if not 0 < word_share <= 1:
        raise ReportgenError(f"--word-label-share must be in (0, 1], got {word_share!r}")


def label_neurons(
    auroc: np.ndarray,  # (H, F)
    within: np.ndarray,  # (H, F) within-word AUROC, NaN where undefined
    word_decided: np.ndarray,  # (F,) bool
    features: tuple[str, ...],
    threshold: float = LABEL_THRESHOLD,
    within_threshold: float = WITHIN_THRESHOLD,
    word_share: float = WORD_SHARE,
) -> list[tuple[Label, ...]]:
    """Each neuron's labels, strongest first: the features whose AUROC passes `threshold` and,
    unless the word decides the feature, whose within-word AUROC passes `within_threshold` on
    the same side of 0.5; if the word decides it, the neuron must instead be among the
    `word_share` of neurons farthest from chance for it (`among_the_farthest`)."""
    distance = np.nan_to_num(np.abs(auroc - 0.5), nan=-1.0)  # (H, F), NaN never passes
    passes = distance >= threshold - LABEL_TOLERANCE
    side = np.sign(auroc - 0.5)
    within_passes = (np.nan_to_num(np.abs(within - 0.5), nan=-1.0)
                     >= within_threshold - LABEL_TOLERANCE) & (np.sign(within - 0.5) == side)
    few = among_the_farthest(distance, word_share)
    passes &= np.where(word_decided[None, :], few, within_passes)
    labels = []
    for neuron in range(len(auroc)):
        chosen = np.flatnonzero(passes[neuron])
        chosen = chosen[np.argsort(-distance[neuron, chosen], kind="stable")]
        labels.append(tuple((features[f], float(auroc[neuron, f])) for f in chosen))
    return labels


def among_the_farthest(
    distance: np.ndarray,  # (H, F) |AUROC - 0.5|, -1 where undefined
    share: float,
) -> np.ndarray:
    """(H, F) bool: at most max(1, floor(share H)) neurons, itself included, are at least as far
    from chance for the feature. Ties at the cut all fail, so the choice never rests on the
    neurons' order."""
    n_neurons = distance.shape[0]
    allowed = max(1, math.floor(share * n_neurons + LABEL_TOLERANCE))
    ordered = np.sort(distance, axis=0)  # (H, F) ascending
    at_least = np.empty(distance.shape, dtype=np.int64)  # neurons with distance >= this one's
    for f in range(distance.shape[1]):
        at_least[:, f] = n_neurons - np.searchsorted(ordered[:, f], distance[:, f], side="left")
    return at_least <= allowed
