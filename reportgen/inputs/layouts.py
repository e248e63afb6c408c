"""The layouts of AWD-LSTM checkpoints, read into a `LayeredModel`: salesforce/awd-lstm-lm's
`model.pt` and state dicts, and fastai's AWD_LSTM language-model state dicts.

salesforce's `main.py` saves `torch.save([model, criterion, optimizer], f)`. Its pickle names
`model.RNNModel` (the same name as pytorch/examples', so `reportgen.inputs.checkpoint` maps both to one
class and tells them apart by `rnns` against `rnn`), `weight_drop.WeightDrop`,
`locked_dropout.LockedDropout`, `splitcross.SplitCrossEntropyLoss` and a torch optimizer. Each
is mapped here to a stand-in that only receives the pickled attributes: none of their code, nor
torch's own `__setstate__` of an RNN, runs. Older PyTorch wrote RNN modules without
`proj_size` or `_flat_weights`, and WeightDrop pickles its LSTM's `flatten_parameters` as a
bound method; the stand-ins take all of it as plain data and keep only the tensors.

Both layouts wrap each one-layer LSTM in a weight-dropping module that keeps the trained
recurrent weight as `weight_hh_l0_raw` (salesforce on the LSTM, fastai on the wrapper); a copy
named `weight_hh_l0` may sit beside it. The raw one is the weight: in evaluation the dropped
copy is the raw one unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from reportgen.errors import ReportgenError
from reportgen.inputs.model import Hyperparameters, check_size, check_splits

SALESFORCE_PICKLE = "salesforce awd-lstm pickle"
SALESFORCE_STATE = "salesforce awd-lstm state dict"
FASTAI_STATE = "fastai state dict"
GATE_TYPES = {4: "LSTM", 3: "GRU"}  # the layer types AWD-LSTM builds, by gate count
# salesforce main.py's split softmax for a vocabulary above 500,000 and above 75,000 words
MAIN_PY_SPLITS = ((500_000, [4200, 35000, 180000]), (75_000, [2800, 20000, 76000]))
SENTINEL_SPLIT = 100 * 1_000_000  # the last entry of SplitCrossEntropyLoss.splits
RNN_KEY = re.compile(r"rnns\.(\d+)\.(?:module\.)?(weight_ih|weight_hh|bias_ih|bias_hh)_l0(_raw)?")
PLAIN_KEYS = ("encoder.weight", "decoder.weight", "decoder.bias", "tail_vectors", "tail_bias")


class PickledRecurrent(nn.Module):
    """Stand-in for torch's LSTM, GRU and RNN in whole-module pickles: their attributes and
    tensors, whatever PyTorch wrote them, and no forward."""


class WeightDrop(nn.Module):
    """Stand-in for salesforce's `weight_drop.WeightDrop`: its `module` holds the weights."""


class LockedDropout(nn.Module):
    """Stand-in for salesforce's `locked_dropout.LockedDropout`, which has no weights."""


class SplitCrossEntropyLoss(nn.Module):
    """Stand-in for salesforce's `splitcross.SplitCrossEntropyLoss`: `splits` and, above one
    split, the `tail_vectors` and `tail_bias` of the split softmax."""


class IgnoredOptimizer:
    """Stand-in for the optimizer saved beside the model: its state is dropped unread."""

    def __setstate__(self, state: Any) -> None:
        del state


def ignored_attribute(owner: Any, name: str) -> None:
    """Stand-in for `builtins.getattr`, which the pickle of a bound method calls: WeightDrop
    replaces its LSTM's `flatten_parameters` with one of its own methods."""
    del owner, name


def empty_table(factory: Any = None) -> dict[Any, Any]:
    """Stand-in for `collections.defaultdict` (the criterion's `stats`, the optimizer's
    `state`): a plain dict, which the safe unpickler may fill."""
    del factory
    return {}


def stand_ins() -> list[tuple[Any, str]]:
    """What the pickles of these layouts name, each mapped to a class or function above."""
    recurrent = [(PickledRecurrent, f"torch.nn.modules.rnn.{name}")
                 for name in ("LSTM", "GRU", "RNN")]
    optimizers = [(IgnoredOptimizer, f"torch.optim.{module}.{name}") for module, name in
                  (("sgd", "SGD"), ("asgd", "ASGD"), ("adam", "Adam"), ("adamw", "AdamW"))]
    return [*recurrent, *optimizers,
            (WeightDrop, "weight_drop.WeightDrop"),
            (LockedDropout, "locked_dropout.LockedDropout"),
            (SplitCrossEntropyLoss, "splitcross.SplitCrossEntropyLoss"),
            (ignored_attribute, "builtins.getattr"),
            (empty_table, "collections.defaultdict"),
            (list, "builtins.list"), (dict, "builtins.dict")]


def unsupported_class(name: str) -> str | None:
    """What to say, first, of a class a checkpoint names that reportgen will never read."""
    if "QRNN" in name or name.startswith("torchqrnn"):
        return qrnn_refusal(name)
    if "Transformer" in name:
        return (f"a Transformer ({name}), which reportgen does not read: it analyses recurrent "
                "language models (RNN, GRU, LSTM, AWD-LSTM), whose units carry a state from "
                "word to word")
    return None


def pickled_type_name(payload: Any) -> str:
    """The class a pickle named, as its author wrote it: a stand-in gives torch's name."""
    if isinstance(payload, PickledRecurrent):
        return str(getattr(payload, "mode", "RNN")).partition("_")[0]
    return type(payload).__name__


def qrnn_refusal(found: str) -> str:
    return (f"QRNN layers ({found}), which reportgen does not read; it reads LSTM, GRU and RNN "
            "layers (an AWD-LSTM trained with --model LSTM)")


def is_salesforce_pickle(payload: Any) -> bool:
    """`[model, criterion, optimizer]` or the model alone, with its `rnns` list of layers."""
    model = payload[0] if isinstance(payload, (list, tuple)) and payload else payload
    return isinstance(model, nn.Module) and "rnns" in model._modules


def state_dict_layout(state: dict[str, Any]) -> str | None:
    """FASTAI_STATE, SALESFORCE_STATE or None (another layout) for a table of tensors."""
    keys = [str(key) for key in state]
    if "0.encoder.weight" in keys or any(key.startswith("0.rnns.") for key in keys):
        return FASTAI_STATE
    if any(key.startswith("rnns.") for key in keys):
        return SALESFORCE_STATE
    return None


def fastai_model_state(payload: dict[str, Any]) -> dict[str, Any]:
    """The model's state dict: fastai's `Learner.save` adds the optimizer as {'model', 'opt'}."""
    inner = payload.get("model")
    if set(payload) == {"model", "opt"} and isinstance(inner, dict) and (
            state_dict_layout(inner) == FASTAI_STATE):
        return inner
    return payload


def layered_state(state: dict[str, Any], layout: str, path: Path) -> dict[str, torch.Tensor]:
    """The tensors under `LayeredModel`'s keys: fastai's `0.` (encoder and layers) and `1.`
    (decoder) dropped, the weight-drop wrappers' `module.` dropped, `weight_hh_l0_raw` kept
    over any dropped copy, and fastai's second name of the embedding left out."""
    out: dict[str, torch.Tensor] = {}
    raw: set[str] = set()
    for key, tensor in state.items():
        bare = str(key)
        if layout == FASTAI_STATE:
            bare = re.sub(r"^[01]\.", "", bare)
            if bare == "encoder_dp.emb.weight":
                continue
        match = RNN_KEY.fullmatch(bare)
        if match:
            name = f"rnns.{match.group(1)}.{match.group(2)}_l0"
            if match.group(3) or name not in raw:
                out[name] = tensor
            if match.group(3):
                raw.add(name)
        elif bare in PLAIN_KEYS:
            out[bare] = tensor
        elif re.match(r"rnns\.\d+\.linear", bare):
            raise ReportgenError(f"{path}: holds {qrnn_refusal(str(key))}")
        else:
            raise ReportgenError(f"{path}: the {layout} holds {key}, which an AWD-LSTM "
                                 "language model of one direction does not have")
    return out


def matrix_shape(state: dict[str, torch.Tensor], key: str, path: Path) -> tuple[int, int]:
    tensor = state.get(key)
    if tensor is None:
        raise ReportgenError(f"{path}: the state dict lacks {key}; it is not a whole AWD-LSTM's")
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2 or 0 in tensor.shape:
        what = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ReportgenError(f"{path}: {key} is {what}, not a matrix; the checkpoint is damaged")
    return int(tensor.shape[0]), int(tensor.shape[1])


def layered_hyperparameters(state: dict[str, torch.Tensor], path: Path, layout: str,
                            splits: list[int] | None = None, dropout: float | None = None,
                            tied: bool | None = None) -> Hyperparameters:
    """Sizes read off the tensors: each layer's width from its recurrent weight, checked
    against what the layer above reads and what the decoder reads."""
    ntoken, emsize = matrix_shape(state, "encoder.weight", path)
    check_size("ntoken", ntoken, path)
    check_size("emsize", emsize, path)
    nlayers = len({key.split(".")[1] for key in state if key.startswith("rnns.")})
    check_size("nlayers", nlayers, path)
    widths: list[int] = []
    rnn_type = None
    for layer in range(nlayers):
        rows, width = matrix_shape(state, f"rnns.{layer}.weight_hh_l0", path)
        check_size("nhid", width, path)
        kind = GATE_TYPES.get(rows // width) if rows % width == 0 else None
        if kind is None or rnn_type not in (None, kind):
            raise ReportgenError(f"{path}: layer {layer + 1}'s recurrent weight is {rows} x "
                                 f"{width}, which fits no LSTM or GRU of the layers below")
        rnn_type = kind
        reads = matrix_shape(state, f"rnns.{layer}.weight_ih_l0", path)[1]
        below = widths[-1] if widths else emsize
        if reads != below:
            raise ReportgenError(f"{path}: layer {layer + 1} reads vectors of {reads} but "
                                 f"{'layer ' + str(layer) if widths else 'the embedding'} "
                                 f"gives {below}; the checkpoint is damaged")
        widths.append(width)
    assert rnn_type is not None
    decoder_rows, decoder_reads = matrix_shape(state, "decoder.weight", path)
    if tied is None:
        tied = bool(decoder_rows == ntoken and decoder_reads == emsize
                    and torch.equal(state["decoder.weight"], state["encoder.weight"]))
    if tied and widths[-1] != emsize:
        raise ReportgenError(f"{path}: the decoder is tied to the embedding ({emsize} wide), but "
                             f"the last layer is {widths[-1]} wide: tied widths must match")
    if decoder_reads != widths[-1] or decoder_rows != ntoken:
        raise ReportgenError(f"{path}: the decoder is {decoder_rows} x {decoder_reads}, but the "
                             f"model has {ntoken:,} words and its last layer is {widths[-1]} "
                             "wide; the checkpoint is damaged")
    splits = tail_splits(state, ntoken, layout, path) if splits is None else splits
    if splits:
        check_splits(splits, ntoken, path)
    return Hyperparameters(rnn_type, ntoken, emsize, widths[0], nlayers, dropout, tied, widths,
                           splits or None)


def tail_splits(state: dict[str, torch.Tensor], ntoken: int, layout: str,
                path: Path) -> list[int]:
    """The split softmax's cluster starts of a state dict, as salesforce's main.py chose
    them from the vocabulary's size; a state dict holds its tail vectors only when the
    criterion's were added to it."""
    chosen = next((splits for above, splits in MAIN_PY_SPLITS if ntoken > above), [])
    tails = state.get("tail_vectors")
    if tails is None:
        if chosen and layout == SALESFORCE_STATE:
            raise ReportgenError(
                f"{path}: a salesforce model of {ntoken:,} words (above 75,000) predicts through "
                "a split softmax whose tail vectors live in the criterion, not in this state "
                "dict; give the model.pt that holds [model, criterion, optimizer]")
        return []
    if tails.dim() != 2 or tails.shape[0] != len(chosen):
        raise ReportgenError(f"{path}: the state dict's tail_vectors {tuple(tails.shape)} fit "
                             f"no split softmax that main.py builds for {ntoken:,} words")
    return list(chosen)


def from_salesforce_pickle(payload: Any, path: Path) -> tuple[Hyperparameters,
                                                              dict[str, torch.Tensor]]:
    """Hyperparameters and tensors of `[model, criterion, optimizer]` (or the model alone)."""
    model = payload[0] if isinstance(payload, (list, tuple)) else payload
    criterion = payload[1] if isinstance(payload, (list, tuple)) and len(payload) > 1 else None
    rnn_type = getattr(model, "rnn_type", None)
    if rnn_type == "QRNN":
        raise ReportgenError(f"{path}: holds {qrnn_refusal('rnn_type QRNN')}")
    state = layered_state(model.state_dict(), SALESFORCE_PICKLE, path)
    splits: list[int] = []
    if isinstance(criterion, nn.Module) and hasattr(criterion, "splits"):  # also unpickled as is
        splits = criterion_splits(criterion, path)
        for name in ("tail_vectors", "tail_bias"):
            if name in criterion._parameters:
                state[name] = criterion._parameters[name]
    elif state.get("encoder.weight") is not None and state["encoder.weight"].shape[0] > 75_000:
        raise ReportgenError(f"{path}: a salesforce model above 75,000 words predicts through its "
                             "criterion's split softmax, which this file lacks; give the "
                             "model.pt that holds [model, criterion, optimizer]")
    dropout = getattr(model, "dropout", None)
    dropout = float(dropout) if isinstance(dropout, float) and 0 <= dropout < 1 else None
    tied = bool(getattr(model, "decoder", None) is not None
                and model.decoder.weight is model.encoder.weight)
    hyper = layered_hyperparameters(state, path, SALESFORCE_PICKLE, splits, dropout, tied)
    return hyper, state


def criterion_splits(criterion: nn.Module, path: Path) -> list[int]:
    """`splits` of SplitCrossEntropyLoss is [0, split, ..., 100,000,000]: the starts between."""
    splits = getattr(criterion, "splits", None)
    if not (isinstance(splits, list) and len(splits) >= 2 and all(
            isinstance(value, int) and not isinstance(value, bool) for value in splits)):
        raise ReportgenError(f"{path}: the criterion's splits are {splits!r}, not a list of "
                             "whole numbers; the checkpoint is damaged")
    tails = criterion._parameters.get("tail_vectors")
    inner = splits[1:-1]
    if len(inner) != (0 if tails is None else tails.shape[0]):
        raise ReportgenError(f"{path}: the criterion has {len(inner)} tail splits but "
                             f"{0 if tails is None else tails.shape[0]} tail vectors; the "
                             "checkpoint is damaged")
    return inner
