"""Model: the pytorch/examples `RNNModel`, its hyperparameters and the device it runs on.

`RNNModel` has the attributes of pytorch/examples' `word_language_model/model.py`, so that its
pickles load into this class (see `reportgen.inputs.checkpoint`, which reads and checks checkpoint
files) and the same seed gives the same weights. `infer_hyperparameters` reads the sizes off a
state dict, which names no class.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from reportgen.errors import ReportgenError

RNN_TYPES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")


class RNNModel(nn.Module):
    """Encoder, recurrent module and decoder, attribute for attribute as pytorch/examples."""

    def __init__(
        self,
        rnn_type: str,
        ntoken: int,
        ninp: int,
        nhid: int,
        nlayers: int,
        dropout: float = 0.5,
        tie_weights: bool = False,
    ):
        super().__init__()
        if rnn_type not in RNN_TYPES:
            raise ReportgenError(f"unknown rnn_type {rnn_type!r}; use one of {', '.join(RNN_TYPES)}")
        if tie_weights and nhid != ninp:
            raise ReportgenError("tied weights need nhid equal to emsize")
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ("LSTM", "GRU"):
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.rnn_type = rnn_type
        self.nhid = nhid
        self.nlayers = nlayers

    @property
    def widths(self) -> list[int]:
        """Each layer's number of units, bottom first: all `nhid` in this layout."""
        return [self.nhid] * self.nlayers

    def init_weights(self) -> None:
        """As pytorch/examples: a tied weight is drawn twice, so the same seed gives the same
        model as its main.py (the second draw is the one that stays)."""
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input: torch.Tensor, hidden: Any) -> tuple[torch.Tensor, Any]:
        emb = self.drop(self.encoder(input))  # (S, B, E)
        output, hidden = self.rnn(emb, hidden)  # (S, B, H)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)  # (S*B, V)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, batch_size: int) -> Any:
        weight = next(self.parameters())
        zeros = weight.new_zeros(self.nlayers, batch_size, self.nhid)
        if self.rnn_type == "LSTM":
            return (zeros, zeros.clone())
        return zeros


def single_layer(rnn_type: str, input_size: int, hidden_size: int) -> nn.RNNBase:
    """One recurrent layer of `rnn_type`, as torch's fused module."""
    if rnn_type in ("LSTM", "GRU"):
        return getattr(nn, rnn_type)(input_size, hidden_size, 1)
    nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
    return nn.RNN(input_size, hidden_size, 1, nonlinearity=nonlinearity)


class LayeredModel(nn.Module):
    """Encoder, one single-layer recurrent module per layer and decoder, as AWD-LSTM builds
    them (salesforce/awd-lstm-lm, fastai): each layer has its own width and reads the output of
    the layer below, and the top layer feeds the decoder.

    With `splits`, the decoder is the split softmax of salesforce's SplitCrossEntropyLoss, for
    vocabularies above 75,000 words: words before `splits[0]` form the head, each further
    split starts a tail cluster, and `tail_vectors` (K, H) and `tail_bias` (K,) give the
    head's one extra entry per cluster (see `reportgen.capture.split_softmax`).
    """

    def __init__(self, rnn_type: str, ntoken: int, emsize: int, widths: list[int], tied: bool,
                 splits: list[int] | None = None) -> None:
        super().__init__()
        if rnn_type not in RNN_TYPES:
            raise ReportgenError(f"unknown rnn_type {rnn_type!r}; use one of "
                                 f"{', '.join(RNN_TYPES)}")
        if tied and widths[-1] != emsize:
            raise ReportgenError(f"tied weights need the last layer's width ({widths[-1]}) equal "
                                 f"to emsize ({emsize})")
        inputs = [emsize, *widths[:-1]]
        self.encoder = nn.Embedding(ntoken, emsize)
        self.rnns = nn.ModuleList(single_layer(rnn_type, n_in, n_out)
                                  for n_in, n_out in zip(inputs, widths))
        self.decoder = nn.Linear(widths[-1], ntoken)
        if tied:
            self.decoder.weight = self.encoder.weight
        self.splits = list(splits or [])
        if self.splits:
            self.tail_vectors = nn.Parameter(torch.zeros(len(self.splits), widths[-1]))
            self.tail_bias = nn.Parameter(torch.zeros(len(self.splits)))
        self.rnn_type = rnn_type
        self.ntoken = ntoken
        self.nlayers = len(widths)
        self.widths = list(widths)


@dataclass
class Hyperparameters:
    """What it takes to rebuild an `RNNModel`, named as the pytorch/examples flags, or a
    `LayeredModel` when `widths` gives each layer's width (`nhid` is then the first's)."""

    rnn_type: str
    ntoken: int
    emsize: int
    nhid: int
    nlayers: int
    dropout: float | None  # None: unknown, as for a state dict (it only matters in training)
    tied: bool
    widths: list[int] | None = None  # None: every layer has nhid units (pytorch/examples)
    splits: list[int] | None = None  # the split softmax's cluster starts, LayeredModel only

    def build(self) -> RNNModel | LayeredModel:
        if self.widths is not None:
            return LayeredModel(self.rnn_type, self.ntoken, self.emsize, self.widths,
                                self.tied, self.splits)
        with warnings.catch_warnings():  # torch warns that one layer ignores dropout; so does eval
            warnings.simplefilter("ignore", UserWarning)
            return RNNModel(
                self.rnn_type, self.ntoken, self.emsize, self.nhid, self.nlayers,
                self.dropout or 0.0, self.tied,
            )


MAX_VOCABULARY = 10_000_000  # words; WikiText-103 has 267,735, the 1B Word Benchmark 793,471
MAX_WIDTH = 65_536  # emsize and nhid
MAX_LAYERS = 64
SIZE_LIMITS = {"ntoken": MAX_VOCABULARY, "emsize": MAX_WIDTH, "nhid": MAX_WIDTH,
               "nlayers": MAX_LAYERS}


def check_size(name: str, value: int, path: Path) -> None:
    limit = SIZE_LIMITS[name]
    if not 1 <= value <= limit:
        raise ReportgenError(
            f"{path}: the model's {name} is {value:,}, outside 1 to {limit:,}; the checkpoint is "
            "damaged, or not that of a word-level RNN language model"
        )


def check_widths(widths: list[int], nlayers: int, path: Path) -> None:
    """One width per layer, each within MAX_WIDTH."""
    if len(widths) != nlayers:
        raise ReportgenError(f"{path}: the model has {nlayers} layers but {len(widths)} layer "
                             "widths; the checkpoint is damaged")
    for width in widths:
        check_size("nhid", width, path)


def check_splits(splits: list[int], ntoken: int, path: Path) -> None:
    """The split softmax's cluster starts rise strictly. A start past the vocabulary's end
    leaves its cluster empty, but its head entry still takes a share of the head's softmax, as
    in salesforce's criterion (a vocabulary of 75,500 words under its 76,000 split)."""
    if not all(a < b for a, b in zip([0, *splits], splits)) or splits[0] >= ntoken:
        raise ReportgenError(f"{path}: the split softmax's clusters start at {splits}, which "
                             f"do not rise from inside the vocabulary of {ntoken:,} words")


def hyperparameters_of(model: RNNModel | LayeredModel) -> Hyperparameters:
    if isinstance(model, LayeredModel):
        return Hyperparameters(model.rnn_type, model.ntoken, model.encoder.embedding_dim,
                               model.widths[0], model.nlayers, None,
                               model.decoder.weight is model.encoder.weight, list(model.widths),
                               list(model.splits) or None)
    return Hyperparameters(
        rnn_type=model.rnn_type,
        ntoken=model.ntoken,
        emsize=model.encoder.embedding_dim,
        nhid=model.nhid,
        nlayers=model.nlayers,
        dropout=float(model.drop.p),
        tied=model.decoder.weight is model.encoder.weight,
    )


def resolve_device(name: str) -> torch.device:
    """`--device` as torch reads it, refused in one line when this machine has no such device.

    "auto" is the first CUDA GPU when PyTorch finds one, and the CPU otherwise.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ReportgenError(f"--device {name!r} is not a device name; use auto, cpu or cuda") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise ReportgenError(
            f"--device {name}: PyTorch finds no such device here; use --device cpu"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ReportgenError(
            f"--device {name}: there are {torch.cuda.device_count()} CUDA devices; use cuda:0"
        )
    return device


GATE_TYPES = {4: ("LSTM",), 3: ("GRU",), 1: ("RNN_TANH", "RNN_RELU")}


def infer_hyperparameters(state_dict: dict[str, torch.Tensor], rnn_type: str | None = None,
                          dropout: float | None = None, path: Path | str = "the state dict"
                          ) -> Hyperparameters:
    """Read sizes off a state dict; the gate count tells LSTM (4) from GRU (3) from RNN (1).

    A state dict does not hold the dropout it was trained with: it is None, unknown, unless
    `dropout` says it.

    RNN_TANH and RNN_RELU have the same tensors, so a plain RNN's state dict needs `rnn_type`:
    guessing would report a ReLU model's numbers as those of a tanh model, with no error.
    """
    required = ("encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "decoder.weight")
    missing = [key for key in required if key not in state_dict]
    if missing:
        raise ReportgenError(
            f"the state dict lacks {', '.join(missing)}; it is not an RNNModel's: give the "
            "checkpoint of a pytorch/examples word_language_model RNNModel"
        )
    for key in required:
        shape = tuple(state_dict[key].shape)
        if len(shape) != 2 or 0 in shape:
            raise ReportgenError(
                f"{path}: {key} has shape {shape}, not that of a matrix; the state dict is not a "
                "whole RNNModel's"
            )
    ntoken, emsize = state_dict["encoder.weight"].shape
    gates_times_nhid, nhid = state_dict["rnn.weight_hh_l0"].shape
    check_size("ntoken", int(ntoken), Path(path))
    check_size("emsize", int(emsize), Path(path))
    check_size("nhid", int(nhid), Path(path))
    gates = gates_times_nhid // nhid
    family = GATE_TYPES.get(gates) if gates * nhid == gates_times_nhid else None
    if family is None:
        raise ReportgenError(f"rnn.weight_hh_l0 has shape {tuple(state_dict['rnn.weight_hh_l0'].shape)}, which fits no RNN type")
    if rnn_type is not None and rnn_type not in family:
        raise ReportgenError(
            f"--rnn-type {rnn_type} does not fit {path}: its weights are those of "
            f"{' or '.join(family)}; give that --rnn-type, or leave it out"
        )
    if rnn_type is None and len(family) > 1:
        raise ReportgenError(
            f"{path}: a state dict of a plain RNN cannot say whether it used tanh or ReLU; give "
            "--rnn-type RNN_TANH or --rnn-type RNN_RELU, the --model it was trained with"
        )
    guessed = family[0]
    nlayers = sum(1 for key in state_dict if re.fullmatch(r"rnn\.weight_hh_l\d+", key))
    check_size("nlayers", nlayers, Path(path))
    encoder, decoder = state_dict["encoder.weight"], state_dict["decoder.weight"]
    tied = encoder.shape == decoder.shape and bool(torch.equal(encoder, decoder))
    return Hyperparameters(rnn_type or guessed, int(ntoken), int(emsize), int(nhid), nlayers,
                           None if dropout is None else float(dropout), tied)
