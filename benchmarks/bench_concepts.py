"""What the within-word AUROC costs: the concepts pass of one layer-state with and without it.

    python benchmarks/bench_concepts.py --checkpoint model.pt --data wikitext-2 [--state L1-h]

The baseline is the same pass without word ids (the AUROC alone, as before within-word
AUROCs existed). Prints the median of --repeats runs of each, their ratio and the threads used.
The capture comes from the report's disk cache when an earlier report made it.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from reportgen.analysis.concepts import neuron_aurocs_with_words, word_ids
from reportgen.capture.cache import cached_capture
from reportgen.inputs.features import token_features
from reportgen.inputs.load import load_inputs
from reportgen.runs.report import ReportConfig


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--text", type=Path)
    parser.add_argument("--state", default="L1-h")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    layer, state = re.fullmatch(r"L(\d+)-([hc])", args.state).groups()
    config = ReportConfig(checkpoint=args.checkpoint, data=args.data, text=args.text,
                          out=Path("unused"))
    inputs = load_inputs(config)
    captured = cached_capture(inputs.loaded.model, inputs.text.ids, inputs.text.tokens,
                              inputs.vocabulary.words, config.capture, inputs.loaded.sha256,
                              config.cache).capture
    values = np.asarray(captured.states[(int(layer), state)])  # (T, H)
    positives = token_features(captured.tokens).matrix()  # (T, F)
    words = word_ids(captured.tokens)
    with threadpool_limits(args.threads):
        alone = median_seconds(lambda: neuron_aurocs_with_words(values, positives, None),
                               args.repeats)
        within = median_seconds(lambda: neuron_aurocs_with_words(values, positives, words),
                                args.repeats)
    print(f"{args.state}: {values.shape[1]} units x {values.shape[0]:,} tokens x "
          f"{positives.shape[1]} features, {args.threads} thread(s), median of {args.repeats}")
    print(f"  AUROC alone (baseline)         {alone:6.2f} s")
    print(f"  AUROC and within-word AUROC    {within:6.2f} s   {within / alone:.2f}x the baseline")


if __name__ == "__main__":
    main()
