"""The figures of docs/numbers.md: what issue 24's changes do to the numbers of a real model.

    python benchmarks/issue24_numbers.py --checkpoint model.pt --data wikitext-2 [--max-tokens N]

Prints, for the model's capture of DATA/test.txt (from the report's disk cache when an earlier
report made it):
- KL ranking: the rank of each unit labelled `in_quotes` (the quote units) by the old
  epsilon = 1e-10 KL over the values inside the interval, and by add-k smoothed KL with
  overflow slots, k = 0.5;
- stability: per layer and state, the top-20 overlap and Spearman's rho between the text's
  halves, by the old and the new KL; and how the new top 20 moves as k changes (0.1 to 2)
  and as the text shrinks to its first half and quarter;
- values outside the interval: units with more than 1% of their values outside;
- word-class labels: per layer and state, the largest share of units one word class labels,
  before the word-share rule (word_share 1) and after it (0.1); and whether the units that the
  overview's Findings name for each word class keep their label;
- time constants: units whose memory gate is exactly 1, and both medians.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.special import rel_entr
from scipy.stats import spearmanr

from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.distributions import (
    NeuronStats,
    analyse_distributions,
    analyse_state,
)
from reportgen.analysis.divergences import rank_neurons
from reportgen.analysis.gates import GateWeights, analyse_gates
from reportgen.analysis.labels import label_neurons
from reportgen.capture.cache import cached_capture
from reportgen.capture.core import Capture, StateKey, state_name
from reportgen.inputs.features import WORD_CLASS_FEATURES, token_features
from reportgen.inputs.load import load_inputs
from reportgen.runs.report import ReportConfig

OLD_EPSILON = 1e-10  # what divergences.py added to every bin before issue 24
TOP = 20


def epsilon_scores(counts: np.ndarray) -> np.ndarray:
    """(H,) KL(p||q) + KL(q||p) as computed before issue 24: counts inside the interval only,
    each row over its own total, q their mean, 1e-10 added to every bin and renormalised."""
    totals = counts.sum(axis=1, keepdims=True)
    p = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    q = p.mean(axis=0, keepdims=True)
    p, q = p + OLD_EPSILON, q + OLD_EPSILON
    p, q = p / p.sum(axis=1, keepdims=True), q / q.sum(axis=1, keepdims=True)
    return rel_entr(p, q).sum(axis=1) + rel_entr(q, p).sum(axis=1)


def top_overlap(a: np.ndarray, b: np.ndarray, near_zero: np.ndarray) -> int:
    """Neurons in both top-20s of two scores, near-zero neurons left out of both."""
    first = set(np.flatnonzero(rank_neurons(a, near_zero) <= TOP))
    return len(first & set(np.flatnonzero(rank_neurons(b, near_zero) <= TOP)))


def halves(n_tokens: int) -> list[tuple[int, int]]:
    return [(0, n_tokens // 2), (n_tokens // 2, n_tokens)]


def part(captured: Capture, key: StateKey, stats: NeuronStats, start: int,
         stop: int) -> NeuronStats:
    """One layer and state analysed over positions start..stop-1, in the whole text's interval."""
    interval = stats.interval[1] if key[1] == "c" else None
    return analyse_state(key, np.asarray(captured.states[key][start:stop]), interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int)
    args = parser.parse_args()
    config = ReportConfig(checkpoint=args.checkpoint, data=args.data, out=Path("unused"),
                          max_tokens=args.max_tokens)
    inputs = load_inputs(config)
    captured = cached_capture(inputs.loaded.model, inputs.text.ids, inputs.text.tokens,
                              inputs.vocabulary.words, config.capture, inputs.loaded.sha256,
                              config.cache).capture
    print(f"{captured.n_tokens:,} tokens of {args.data / 'test.txt'}")
    new = analyse_distributions(captured)
    features = token_features(captured.tokens)
    concepts = analyse_concepts(captured, features)
    quotes = features.names.index("in_quotes")

    print("\n## KL ranking: quote units (labelled in_quotes), rank by epsilon 1e-10 -> add-0.5")
    old_scores = {}
    for key, stats in new.states.items():
        old_scores[key] = epsilon_scores(stats.counts)
        old_rank = rank_neurons(old_scores[key], stats.near_zero)
        for n, labels in enumerate(concepts[key].labels):
            if "in_quotes" in dict(labels):
                print(f"{state_name(key)} unit {n}: AUROC {concepts[key].auroc[n, quotes]:.3f}, "
                      f"rank {old_rank[n]} -> {stats.rank[n]} of {stats.n_neurons}")

    print("\n## Stability between the text's halves: top-20 overlap, Spearman rho "
          "(epsilon | add-0.5)")
    for key, stats in new.states.items():
        old_halves = [epsilon_scores(part(captured, key, stats, start, stop).counts)
                      for start, stop in halves(captured.n_tokens)]
        kept = ~stats.near_zero
        old_rho = spearmanr(old_halves[0][kept], old_halves[1][kept])[0]
        stability = stats.stability
        print(f"{state_name(key)}: {top_overlap(*old_halves, stats.near_zero)}/{TOP}, "
              f"rho {old_rho:.3f} | {stability.top_overlap}/{stability.top_n}, "
              f"rho {stability.spearman:.3f}")

    print("\n## Add-0.5 top 20 against other k and shorter texts (overlap of 20; epsilon's own)")
    for key, stats in new.states.items():
        line = [f"k={k:g}: {top_overlap(stats.score, analyse_distributions(captured, kl_smoothing=k)[key].score, stats.near_zero)}"
                for k in (0.1, 1.0, 2.0)]
        for share in (2, 4):
            shorter = part(captured, key, stats, 0, captured.n_tokens // share)
            line.append(f"1/{share} text: {top_overlap(stats.score, shorter.score, stats.near_zero)}"
                        f" (epsilon {top_overlap(old_scores[key], epsilon_scores(shorter.counts), stats.near_zero)})")
        print(f"{state_name(key)}: " + ", ".join(line))

    print("\n## Values outside the interval")
    for key, stats in new.states.items():
        share = stats.neuron_share_outside
        print(f"{state_name(key)}: interval {stats.interval}, {np.count_nonzero(share > 0.01)} "
              f"units over 1% outside, largest {share.max():.3f}")

    print("\n## Word-class labels: largest share of units one class labels, before -> after")
    classes = [features.names.index(name) for name in WORD_CLASS_FEATURES]
    for key, state in concepts.states.items():
        before = label_neurons(state.auroc, state.within, state.word_decided, state.features,
                               word_share=1.0)
        counts_before = {f: sum(state.features[f] in dict(items) for items in before) for f in classes}
        counts_after = {f: sum(state.features[f] in dict(items) for items in state.labels)
                        for f in classes}
        worst_before = max(counts_before, key=counts_before.get)
        worst_after = max(counts_after, key=counts_after.get)
        h = len(state.labels)
        print(f"{state_name(key)}: {state.features[worst_before]} {counts_before[worst_before]}/{h} "
              f"-> {state.features[worst_after]} {counts_after[worst_after]}/{h}; "
              f"labelled units {sum(bool(b) for b in before)} -> "
              f"{sum(bool(items) for items in state.labels)}")
        for f in (features.names.index("is_month"), features.names.index("is_heading_markup"),
                  features.names.index("is_pronoun")):
            print(f"    {state.features[f]}: {counts_before[f]} -> {counts_after[f]}")

    print("\n## Findings (best labelled unit by KL rank share, labels as before) keep their labels")
    for name in ("in_quotes", "is_pronoun"):
        f = features.names.index(name)
        candidates = []
        for key, state in concepts.states.items():
            before = label_neurons(state.auroc, state.within, state.word_decided, state.features,
                                   word_share=1.0)
            old_rank = rank_neurons(old_scores[key], new.states[key].near_zero)
            candidates += [(old_rank[n] / len(before), key, n)
                           for n, items in enumerate(before) if name in dict(items)]
        if not candidates:
            print(f"{name}: no unit labelled")
            continue
        _, key, n = min(candidates)
        kept = name in dict(concepts[key].labels[n])
        print(f"{name}: {state_name(key)} unit {n} (AUROC {concepts[key].auroc[n, f]:.3f}), "
              f"label kept: {kept}")

    weights = GateWeights.of(inputs.loaded.model)
    if weights is not None:
        print("\n## Time constants: units at infinity; median -1/ln(mean f), median -1/mean(ln f)")
        for layer in analyse_gates(captured, weights).layers:
            print(f"L{layer.layer}: {np.count_nonzero(np.isinf(layer.time_constant))} at infinity; "
                  f"{np.median(layer.time_constant):.1f}, {np.median(layer.product_time_constant):.1f}")


if __name__ == "__main__":
    main()
