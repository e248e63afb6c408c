"""An AWD-LSTM on real text: train a small 3-layer AWD-LSTM (salesforce/awd-lstm-lm's model,
layers of different widths, tied) briefly on WikiText-2's valid.txt, save it as salesforce's
main.py does, `[model, criterion, optimizer]` in `model.pt`, and render its full report.

    python examples/awd_lstm_wikitext2.py --data ../shared/data/wikitext-2

The data folder is only read. The split folder (train = valid.txt, valid = the first 1,300
lines of test.txt, test = the rest, as examples/wikitext2_proof.py splits it), the model and
the report go to --work (default ~/.cache/reportgen/awd-lstm). The pickle names the modules
salesforce's code has (`model`, `weight_drop`, `locked_dropout`, `splitcross`), which this
script defines, so reportgen reads the file as it reads salesforce's own. The report is made
with the command a user would type:

    reportgen report WORK/model.pt --data WORK/split --out WORK/report

Widths are those of the 400/1150/400 model scaled down (64/192/64 by default) and training is
time-boxed (--minutes), so the machine's speed sets how far it gets.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from wikitext2_proof import VALID_LINES, split_folder  # the same split as the proof

from reportgen.inputs.corpus import tokenize, vocabulary_from_folder


class LockedDropout(nn.Module):
    """One dropout mask per sequence, shared by every step (Gal and Ghahramani 2016)."""

    def forward(self, x: torch.Tensor, dropout: float = 0.5) -> torch.Tensor:  # (S, B, H)
        if not self.training or not dropout:
            return x
        mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - dropout) / (1 - dropout)
        return mask * x


class WeightDrop(nn.Module):
    """DropConnect on the recurrent weight: the trained weight is `weight_hh_l0_raw`."""

    def __init__(self, module: nn.LSTM, dropout: float) -> None:
        super().__init__()
        self.module, self.weights, self.dropout = module, ["weight_hh_l0"], dropout
        raw = module.weight_hh_l0
        del module._parameters["weight_hh_l0"]
        module.register_parameter("weight_hh_l0_raw", nn.Parameter(raw.data))

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        raw = self.module.weight_hh_l0_raw
        setattr(self.module, "weight_hh_l0", F.dropout(raw, self.dropout, self.training))
        return self.module(*args)


class SplitCrossEntropyLoss(nn.Module):
    """salesforce's criterion with no split (below 75,000 words): a full softmax."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size, self.splits, self.nsplits = hidden_size, [0, 100 * 1000000], 1

    def forward(self, weight: torch.Tensor, bias: torch.Tensor, hiddens: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.linear(hiddens, weight, bias), targets)


class RNNModel(nn.Module):
    """salesforce's RNNModel for --model LSTM: inner layers nhid wide, the last emsize (tied)."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int) -> None:
        super().__init__()
        self.lockdrop = LockedDropout()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnns = nn.ModuleList(WeightDrop(nn.LSTM(ninp if l == 0 else nhid,
                                                     nhid if l != nlayers - 1 else ninp, 1), 0.5)
                                  for l in range(nlayers))
        self.decoder = nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        self.rnn_type, self.ninp, self.nhid, self.nlayers = "LSTM", ninp, nhid, nlayers
        self.dropout, self.dropouth, self.dropouti, self.dropoute = 0.4, 0.25, 0.4, 0.1
        self.tie_weights = True

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (S, B) -> (S * B, E)
        mask = self.encoder.weight.new_empty(self.encoder.weight.size(0), 1)
        keep = mask.bernoulli_(1 - self.dropoute) / (1 - self.dropoute) if self.training else 1
        x = self.lockdrop(F.embedding(ids, self.encoder.weight * keep), self.dropouti)
        for l, rnn in enumerate(self.rnns):
            x, _ = rnn(x)
            x = self.lockdrop(x, self.dropouth if l != self.nlayers - 1 else self.dropout)
        return x.view(-1, x.size(2))


def with_salesforce_names(classes: dict[str, type]) -> dict[str, types.ModuleType]:
    """Modules named as salesforce's files, holding these classes, so the pickle names them."""
    modules = {}
    for module_name, cls in classes.items():
        module = types.ModuleType(module_name)
        cls.__module__ = module_name
        setattr(module, cls.__name__, cls)
        modules[module_name] = module
    return modules


def train(split: Path, out: Path, emsize: int, nhid: int, minutes: float, seed: int) -> None:
    """Truncated backpropagation through time with salesforce's regularisers, for `minutes`."""
    torch.manual_seed(seed)
    vocabulary = vocabulary_from_folder(split)
    ids = torch.as_tensor(tokenize(split / "train.txt", vocabulary).ids)
    valid = torch.as_tensor(tokenize(split / "valid.txt", vocabulary, 10_000).ids)
    batch, bptt = 40, 70
    data = ids[: len(ids) // batch * batch].view(batch, -1).t().contiguous()  # (N, B)
    model = RNNModel(len(vocabulary), emsize, nhid, 3)
    criterion = SplitCrossEntropyLoss(emsize)
    optimizer = torch.optim.SGD(model.parameters(), lr=30, weight_decay=1.2e-6)
    deadline, step = time.monotonic() + 60 * minutes, 0
    while time.monotonic() < deadline:
        for start in range(0, data.size(0) - 1, bptt):
            if time.monotonic() > deadline:
                break
            model.train()
            chunk = data[start : start + bptt + 1]
            output = model(chunk[:-1])
            loss = criterion(model.decoder.weight, model.decoder.bias, output,
                             chunk[1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            optimizer.step()
            step += 1
    model.eval()
    with torch.no_grad():
        valid_loss = criterion(model.decoder.weight, model.decoder.bias,
                               model(valid[:-1].view(-1, 1)), valid[1:])
    print(f"trained {step} steps of {batch}x{bptt} tokens; valid perplexity "
          f"{math.exp(float(valid_loss)):.1f}")
    names = with_salesforce_names({"model": RNNModel, "weight_drop": WeightDrop,
                                   "locked_dropout": LockedDropout,
                                   "splitcross": SplitCrossEntropyLoss})
    saved = dict(sys.modules)
    sys.modules.update(names)
    try:
        torch.save([model, criterion, optimizer], out)
    finally:
        for name in names:
            sys.modules.pop(name)
            if name in saved:
                sys.modules[name] = saved[name]


def summarise(report: Path) -> None:
    """The layer widths and what the defaults found, from the report's own exports."""
    neurons = pd.read_csv(report / "data" / "neurons.csv")
    print(neurons.groupby(["layer", "state"]).size().rename("units").to_string())
    for (layer, state), rows in neurons.groupby(["layer", "state"]):
        labelled = rows[rows["label"].fillna("") != ""]
        top = rows.sort_values("rank").iloc[0]
        print(f"L{layer}-{state}: {len(labelled)} of {len(rows)} units labelled; top by KL: "
              f"unit {top.neuron} ({top.label if isinstance(top.label, str) else 'no label'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="WikiText-2 (read only)")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/reportgen/awd-lstm")
    parser.add_argument("--emsize", type=int, default=64)
    parser.add_argument("--nhid", type=int, default=192)
    parser.add_argument("--minutes", type=float, default=5.0, help="training time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--valid-lines", type=int, default=VALID_LINES,
                        help="lines of test.txt held out as the validation text")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="analyse only the first N tokens of the test text")
    args = parser.parse_args()
    split = split_folder(args.data, args.work / "split", args.valid_lines)
    checkpoint = args.work / "model.pt"
    if not checkpoint.exists():
        train(split, checkpoint, args.emsize, args.nhid, args.minutes, args.seed)
    command = [sys.executable, "-m", "reportgen", "report", str(checkpoint), "--data",
               str(split), "--out", str(args.work / "report")]
    if args.max_tokens:
        command += ["--max-tokens", str(args.max_tokens)]
    print(" ".join(command))
    subprocess.run(command, check=True)
    summarise(args.work / "report")


if __name__ == "__main__":
    main()
