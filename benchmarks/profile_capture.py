"""Where the capture's time goes: the PyTorch profiler over one capture of a 2x650 model.

The capture's floor is its arithmetic at the machine's matrix-product rate; this shows how far
each part is from it. Each row is one PyTorch operation, with its share of the capture:
`aten::addmm` holds the decoder's product, the input products of each chunk and the recurrent
gate product of every step over the streams; `aten::sigmoid`, `aten::tanh`, `aten::addcmul`
and `aten::mul` the gates' elementwise update; `aten::topk`, `aten::exp_` and `aten::sum` the
decoder's top five and log-sum-exp.

    python benchmarks/profile_capture.py --tokens 8192 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from reportgen.capture.core import CaptureOptions, capture
from reportgen.inputs.model import RNNModel

MEDIUM = {"ntoken": 33_278, "ninp": 650, "nhid": 650, "nlayers": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=8192, help="tokens captured (default: 8192)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=14, help="operations listed (default: 14)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RNNModel("LSTM", **MEDIUM, dropout=0.0).eval()
    ids = np.random.default_rng(0).integers(0, MEDIUM["ntoken"], args.tokens)
    tokens, words = [""] * args.tokens, [""] * MEDIUM["ntoken"]
    options = CaptureOptions(device="cpu", progress=False)
    capture(model, ids[:2048], tokens[:2048], words, options)  # warm the kernels up
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        capture(model, ids, tokens, words, options)
    seconds = time.perf_counter() - started
    print(f"capture of {args.tokens:,} tokens, {args.threads} threads: {seconds:.2f} s, "
          f"{args.tokens / seconds:,.0f} tokens/s (profiled, so a little slower)")
    print(profiled.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
