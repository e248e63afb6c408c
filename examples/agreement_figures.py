"""The Agreement page's figures for one model, printed: accuracy with its 95% Wilson interval
per built-in task and condition, then the number-unit finder on the noun-PP items.

    python examples/agreement_figures.py DATA_FOLDER CHECKPOINT [--no-finder]

For the demo model: DATA_FOLDER is ~/.cache/reportgen/demo-v3-seed0/corpus and CHECKPOINT
~/.cache/reportgen/demo-v3-seed0/model/model.pt, after one `reportgen demo`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reportgen.analysis.agreement import analyse_agreement
from reportgen.analysis.number_units import find_number_units, finder_items
from reportgen.inputs.agreement_suites import NOUN_PP, built_in_suite
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import vocabulary_from_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--no-finder", action="store_true")
    args = parser.parse_args()
    words = vocabulary_from_folder(args.data).words
    model = load_checkpoint(args.checkpoint).model
    suite = built_in_suite(words, seed=0)
    started = time.perf_counter()
    result = analyse_agreement(model, [suite], words, "cpu")
    print(f"{len(result.items)} items scored in {time.perf_counter() - started:.1f} s; "
          f"{len(suite.lacking)} lexicon entries not in the vocabulary")
    for s in result.scores:
        print(f"{s.task:18s} {s.condition:3s} n={s.n:4d} accuracy {s.accuracy:.3f} "
              f"[{s.ci_low:.3f}, {s.ci_high:.3f}] {s.verdict}")
    items = finder_items([item for item in suite.items if item.task == NOUN_PP])
    if args.no_finder or not items:
        return
    started = time.perf_counter()
    found = find_number_units(model, items, words, None, seed=0, device="cpu")
    print(f"finder on {len(items)} noun-PP items in {time.perf_counter() - started:.1f} s")
    top = found.top_by_drop()[:5]
    n_controls = sum(role == "control" for role in found.role)
    for i in top:
        print(f"L{found.layer[i]}-h-{found.unit[i]:04d}: incongruent accuracy lost "
              f"{found.drop[i]:.3f}, beats {found.controls_beaten[i]} of {n_controls} controls")
    controls = found.drop[[role == "control" for role in found.role]]
    largest = (f"largest loss {controls.max():.3f}" if controls.size
               else "none: the model has no units beyond the top ones")
    print(f"controls: {largest}; screen vs exact margin drop: Spearman "
          f"{found.spearman:.2f} (vs accuracy drop {found.spearman_accuracy:.2f})")


if __name__ == "__main__":
    main()
