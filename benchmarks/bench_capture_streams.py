"""The capture's tokens/s: parallel streams against one stream, and against an older capture.

One run times each of these in turn, `--repeats` rounds, on the first `--tokens` tokens of the
text:
- `capture` with the streams it chooses for this model and text (B and K printed);
- `capture` with one stream (`streams=1`), the same hand-stepped recurrence at batch 1;
- with `--against REV`, the `reportgen/capture.py` of git revision REV, loaded from git into
  its own module and run the same way (for example the nn.LSTM capture with its second pass
  over the gates for c, before parallel streams).
It prints the median of each and the ratios, from this one run. Random weights have the
arithmetic of trained ones; the text gives the ids.

    python benchmarks/bench_capture_streams.py --size thesis --tokens 20000 --threads 2 \\
        --against 6b7a7ac
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from reportgen.capture.core import Capture, CaptureOptions, capture
from reportgen.inputs.model import RNNModel

SIZES = {  # the models of bench_report.py
    "medium": {"ntoken": 33_278, "ninp": 650, "nhid": 650, "nlayers": 2},
    "thesis": {"ntoken": 33_278, "ninp": 400, "nhid": 2000, "nlayers": 2},
}


def old_capture(revision: str) -> ModuleType:
    """reportgen/capture.py as it was at `revision`, as a module of its own."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{revision}:reportgen/capture.py"], cwd=root,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="reportgen-old-capture-")) / "old_capture.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("old_capture", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def text_ids(path: Path, tokens: int, ntoken: int) -> np.ndarray:
    """The first `tokens` words of the text (with `<eos>` per line), as ids below ntoken; each
    word's id is its first appearance, so the ids have the text's own repetitions."""
    ids: dict[str, int] = {}
    out: list[int] = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            for word in [*line.split(), "<eos>"]:
                out.append(ids.setdefault(word, len(ids) % ntoken))
                if len(out) == tokens:
                    return np.array(out, dtype=np.int64)
    return np.array(out, dtype=np.int64)


def interleaved_medians(runs: dict[str, Callable[[], Capture]], repeats: int
                        ) -> tuple[dict[str, float], dict[str, Capture]]:
    """The median seconds of each run, taken in turn (A, B, C, A, B, C, ...) so that a shared
    machine's drift falls on every run alike, and each run's last result."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, Capture] = {}
    for _ in range(repeats):
        for name, function in runs.items():
            started = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in times.items()}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=SIZES, default="thesis")
    parser.add_argument("--text", type=Path, default=Path("../shared/data/wikitext-2/test.txt"))
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also time capture.py of this revision")
    parser.add_argument("--streams", type=int, default=0, help="B; 0 lets capture choose")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RNNModel("LSTM", **SIZES[args.size], dropout=0.0).eval()
    ids = text_ids(args.text, args.tokens, model.ntoken)
    tokens, words = [""] * len(ids), [""] * model.ntoken
    print(f"capture of {len(ids):,} tokens of {args.text.name}, random {args.size} model "
          f"({model.nlayers}x{model.nhid}, emsize {model.encoder.embedding_dim}, vocabulary "
          f"{model.ntoken:,}), {torch.get_num_threads()} threads, median of {args.repeats}",
          flush=True)
    runs: dict[str, Callable[[], Capture]] = {
        "streams": lambda: capture(model, ids, tokens, words,
                                   CaptureOptions(progress=False, streams=args.streams)),
        "one stream": lambda: capture(model, ids, tokens, words,
                                      CaptureOptions(progress=False, streams=1)),
    }
    if args.against:
        module = old_capture(args.against)
        runs[f"capture.py of {args.against}"] = lambda: module.capture(
            model, ids, tokens, words, module.CaptureOptions(progress=False))
    seconds, results = interleaved_medians(runs, args.repeats)
    for name in runs:
        print(f"  {name:<28} {seconds[name]:8.1f} s  {len(ids) / seconds[name]:8,.0f} tokens/s")
    record = results["streams"].streams
    print(f"  streams: B = {record.streams}, K = {record.burn_in} (largest {record.largest_burn_in},"
          f" doubled at {record.doubled}, {record.fallbacks} fallbacks), largest boundary "
          f"difference {record.boundary_difference:.1e}")
    reference = results["one stream"]
    for name, result in results.items():
        difference = max(float(np.abs(result.states[key] - reference.states[key]).max())
                         for key in reference.states)
        ratio = result.perplexity() / reference.perplexity() - 1
        print(f"  {name:<28} {seconds['one stream'] / seconds[name]:5.2f}x one stream; "
              f"largest state difference {difference:.1e}, perplexity {ratio:+.1e} relative")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
