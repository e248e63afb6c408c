"""The comparison stage of three 2x650 LSTMs (unit alignment and linear CKA) against the capture
of one of them, in one run.

The models are the trained checkpoints given with --checkpoint (three of them, or fewer and
random models for the rest), else three randomly initialised 2x650 LSTMs with the vocabulary
of --data. Each is captured over the first --tokens tokens of DATA/test.txt; the first capture
is timed, as the cost every model of a sweep pays anyway. Then the comparison runs as a
comparison site runs it, on the float16 states at the 4,000 sampled positions:
- alignment: for 3 pairs x 4 layer-states, the (650, 650) correlations and the Hungarian match;
- CKA: 3 pairs x 4 states across models, and 6 pairs of states within each model.
It prints the seconds of each, their sum, and the ratio of that sum to the one capture.

    python benchmarks/bench_comparison.py --threads 1
    python benchmarks/bench_comparison.py --checkpoint ~/.cache/reportgen/wt2-650/model-d0.5.pt \
        ~/.cache/reportgen/wt2-650/model-d0.2.pt --data ~/.cache/reportgen/wikitext2-proof/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from reportgen.analysis.alignment import align_models
from reportgen.analysis.similarity import compare_representations
from reportgen.analysis.state_sample import SAMPLE_POSITIONS, sample_states
from reportgen.capture.core import capture
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.inputs.model import RNNModel

N_MODELS = 3
UNITS = 650


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=Path.home() / ".cache/reportgen/wikitext2-proof/data",
                        help="corpus folder: its splits make the vocabulary, test.txt is the "
                             "text (default: %(default)s)")
    parser.add_argument("--checkpoint", type=Path, nargs="*", default=[],
                        help="up to three trained models; random 2x650 models fill the rest")
    parser.add_argument("--tokens", type=int, default=40_000,
                        help="tokens of the text each model reads (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch and BLAS threads (default: %(default)s)")
    return parser.parse_args()


def models(checkpoints: list[Path], ntoken: int) -> list[RNNModel]:
    """The given checkpoints, then random 2x650 LSTMs with seeds 1, 2, ... up to three."""
    found = [load_checkpoint(path).model for path in checkpoints[:N_MODELS]]
    for seed in range(1, N_MODELS - len(found) + 1):
        torch.manual_seed(seed)
        found.append(RNNModel("LSTM", ntoken, UNITS, UNITS, 2, dropout=0.0).eval())
    return found


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        vocabulary = vocabulary_from_folder(args.data)
        text = tokenize(args.data / "test.txt", vocabulary, args.tokens)
        print(f"threads: {args.threads} (torch and BLAS); {len(text):,} tokens; vocabulary "
              f"{len(vocabulary):,}; {SAMPLE_POSITIONS:,} sampled positions")
        samples = {}
        capture_seconds = None
        for index, model in enumerate(models(args.checkpoint, len(vocabulary))):
            started = time.perf_counter()
            cap = capture(model, text.ids, text.tokens, vocabulary.words)
            seconds = time.perf_counter() - started
            capture_seconds = capture_seconds or seconds
            print(f"capture of model {index + 1}: {seconds:.1f} s")
            samples[f"model-{index + 1}"] = sample_states(cap)
            del cap
        started = time.perf_counter()
        alignment = align_models(samples)
        aligned = time.perf_counter() - started
        started = time.perf_counter()
        similarity = compare_representations(samples)
        ckas = time.perf_counter() - started
    total = aligned + ckas
    print(f"alignment, {len(alignment.pairs)} model pairs x states: {aligned:.2f} s")
    print(f"linear CKA, {len(similarity.across)} across + {len(similarity.within)} within: "
          f"{ckas:.2f} s")
    print(f"comparison stage: {total:.2f} s = {total / capture_seconds:.3f} x one model's "
          f"capture of {len(text):,} tokens ({capture_seconds:.1f} s)")


if __name__ == "__main__":
    main()
