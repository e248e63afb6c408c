"""Model: the pytorch/examples `RNNModel`, and safe loading of its checkpoints.

`word_language_model/main.py` saves the whole module with `torch.save(model, f)`, a pickle that
names the class `model.RNNModel`. Unpickling arbitrary classes can run arbitrary code, so we load
with `weights_only=True` and map that one name to our own class, which has the same attributes.
Any other class named in the pickle is refused with its name, unless the user passes the
explicit `allow_unsafe_pickle` flag.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from reportgen.errors import ReportgenError

RNN_TYPES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
OWN_FORMAT = "reportgen-checkpoint"
OWN_FORMAT_VERSION = 1


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


@dataclass
class Hyperparameters:
    """What it takes to rebuild an `RNNModel`, named as the pytorch/examples flags."""

    rnn_type: str
    ntoken: int
    emsize: int
    nhid: int
    nlayers: int
    dropout: float | None  # None: unknown, as for a state dict (it only matters in training)
    tied: bool

    def build(self) -> RNNModel:
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


def checked_hyperparameters(raw: Any, path: Path) -> Hyperparameters:
    """Hyperparameters from a checkpoint, each of the right type and within sane limits, before
    anything is allocated: a small file must not make reportgen build a huge model."""
    names = [f.name for f in Hyperparameters.__dataclass_fields__.values()]
    if not isinstance(raw, dict):
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (its hyperparameters are a "
                             f"{type(raw).__name__}, not a table)")
    missing = [name for name in names if name not in raw and name != "dropout"]
    unknown = sorted(set(map(str, raw)) - set(names))
    if missing or unknown:
        what = (f"lacks {', '.join(missing)}" if missing
                else f"has unknown {', '.join(unknown)}")
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (its hyperparameters {what})")
    if raw["rnn_type"] not in RNN_TYPES:
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (rnn_type {raw['rnn_type']!r} "
                             f"is not one of {', '.join(RNN_TYPES)})")
    for name, limit in SIZE_LIMITS.items():
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReportgenError(f"{path}: damaged reportgen checkpoint ({name} is {value!r}, "
                                 "not a whole number)")
        check_size(name, value, path)
    dropout = raw.get("dropout")
    if dropout is not None and (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
                                or not 0.0 <= dropout < 1.0):
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (dropout is {dropout!r}, not "
                             "a number in [0, 1))")
    if not isinstance(raw["tied"], bool):
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (tied is {raw['tied']!r}, "
                             "not true or false)")
    return Hyperparameters(raw["rnn_type"], raw["ntoken"], raw["emsize"], raw["nhid"],
                           raw["nlayers"], None if dropout is None else float(dropout),
                           raw["tied"])


def check_size(name: str, value: int, path: Path) -> None:
    limit = SIZE_LIMITS[name]
    if not 1 <= value <= limit:
        raise ReportgenError(
            f"{path}: the model's {name} is {value:,}, outside 1 to {limit:,}; the checkpoint is "
            "damaged, or not that of a word-level RNN language model"
        )


@dataclass
class LoadedModel:
    """A model in eval mode with what is known about it."""

    model: RNNModel
    hyperparameters: Hyperparameters
    format: str  # "pytorch-examples pickle", "state dict" or "reportgen"
    sha256: str
    vocabulary: list[str] | None = None  # stored by our own format only
    metadata: dict[str, Any] = field(default_factory=dict)  # seed, perplexities, ...


def hyperparameters_of(model: RNNModel) -> Hyperparameters:
    return Hyperparameters(
        rnn_type=model.rnn_type,
        ntoken=model.ntoken,
        emsize=model.encoder.embedding_dim,
        nhid=model.nhid,
        nlayers=model.nlayers,
        dropout=float(model.drop.p),
        tied=model.decoder.weight is model.encoder.weight,
    )


def save_checkpoint(
    model: RNNModel,
    path: Path,
    vocabulary: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Our own format: plain dicts and tensors only, so it loads with `weights_only=True`."""
    payload = {
        "format": OWN_FORMAT,
        "version": OWN_FORMAT_VERSION,
        "hyperparameters": asdict(hyperparameters_of(model)),
        "state_dict": model.state_dict(),
        "vocabulary": vocabulary,
        "metadata": metadata or {},
    }
    torch.save(payload, path)


def _safe_globals() -> list[Any]:
    """The classes a pytorch/examples pickle of an `RNNModel` may name, and nothing more."""
    return [
        (RNNModel, "model.RNNModel"),
        nn.Dropout,
        nn.Embedding,
        nn.LSTM,
        nn.GRU,
        nn.RNN,
        nn.Linear,
        set,
    ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unsupported_global(error: Exception) -> str | None:
    match = re.search(r"GLOBAL ([\w.]+)", str(error))
    return match.group(1) if match else None


def _why_unreadable(path: Path, error: Exception) -> str:
    """A short reason from the file's first bytes: torch's own messages run to many lines."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "its zip archive is damaged or cut short"
    if not head.startswith(b"\x80"):
        return "it is neither a torch.save zip archive nor a pickle"
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
    if detail:
        return f"its pickle uses what safe loading refuses ({detail.group(1).strip()})"
    first_line = str(error).strip().splitlines()[0][:80] if str(error).strip() else ""
    summary = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    return f"the pickle is damaged or cut short ({summary})"


def _read_pickle(path: Path, allow_unsafe_pickle: bool) -> Any:
    try:
        with warnings.catch_warnings():  # torch warns on stderr about pickle protocols
            warnings.simplefilter("ignore")
            if allow_unsafe_pickle:
                return torch.load(path, map_location="cpu", weights_only=False)
            with torch.serialization.safe_globals(_safe_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        name = _unsupported_global(error)
        if name:
            raise ReportgenError(
                f"{path}: the checkpoint names {name}, which reportgen does not load; it reads "
                "pytorch/examples RNNModel pickles, state dicts and its own checkpoints "
                "(--allow-unsafe-pickle runs the pickle's code, only for files you trust)"
            ) from None
        raise ReportgenError(
            f"{path}: not a readable PyTorch checkpoint: {_why_unreadable(path, error)}; give "
            "the whole file that torch.save wrote"
        ) from None
    except ModuleNotFoundError as error:  # only the unsafe path imports what a pickle names
        raise ReportgenError(
            f"{path}: the pickle names the module {error.name!r}, which cannot be imported here; "
            "run reportgen where that module's code is importable (its folder on PYTHONPATH), "
            "or leave out --allow-unsafe-pickle: a pytorch/examples RNNModel loads without it"
        ) from None
    except AttributeError as error:
        found = re.search(r"Can't get attribute '([^']+)' on <module '([^']+)'", str(error))
        if found is None:
            raise ReportgenError(
                f"{path}: not a readable PyTorch checkpoint: {_why_unreadable(path, error)}; "
                "give the whole file that torch.save wrote"
            ) from None
        raise ReportgenError(
            f"{path}: the pickle names {found.group(2)}.{found.group(1)}, which the module "
            f"{found.group(2)!r} importable here does not define; run reportgen with the code "
            "the checkpoint was saved with, or leave out --allow-unsafe-pickle"
        ) from None
    except Exception as error:  # torch.load fails on garbage in many ways (KeyError, EOFError...)
        raise ReportgenError(
            f"{path}: not a readable PyTorch checkpoint: {_why_unreadable(path, error)}; give "
            "the whole file that torch.save wrote"
        ) from None


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


def check_state_dict(state_dict: Any, hyper: Hyperparameters, path: Path) -> None:
    """The state dict has every tensor the model needs, each a float tensor of the right shape
    whose values the file really holds; checked on a model without memory (the meta device),
    so that a file that claims a huge model costs nothing before it is refused."""
    if not isinstance(state_dict, dict):
        raise ReportgenError(f"{path}: damaged checkpoint (its state dict is a "
                             f"{type(state_dict).__name__}, not a table of tensors)")
    with torch.device("meta"):
        expected = hyper.build().state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [str(key) for key in state_dict if key not in expected]
    if missing or unexpected:
        what = (f"missing {', '.join(missing[:3])}" if missing
                else f"unexpected {', '.join(unexpected[:3])}")
        raise ReportgenError(
            f"{path}: the state dict does not fit the model ({what}); give the checkpoint of a "
            "whole pytorch/examples RNNModel"
        )
    for key, needed in expected.items():
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            what = (f"a {tensor.dtype} tensor" if isinstance(tensor, torch.Tensor)
                    else f"a {type(tensor).__name__}")
            raise ReportgenError(f"{path}: the weight {key} is {what}, not a tensor of floating "
                                 "point numbers; the checkpoint is damaged")
        if tensor.shape != needed.shape:
            raise ReportgenError(
                f"{path}: the state dict does not fit the model (size mismatch for {key}: the "
                f"checkpoint has {tuple(tensor.shape)}, the model needs {tuple(needed.shape)}); "
                "give the checkpoint of a whole pytorch/examples RNNModel"
            )
        held = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
        if tensor.numel() and held < tensor.numel():
            raise ReportgenError(
                f"{path}: the weight {key} claims {tensor.numel():,} values but the file holds "
                f"{held:,}; the checkpoint is damaged or crafted"
            )


def model_from_state_dict(state_dict: dict[str, torch.Tensor], hyper: Hyperparameters,
                          path: Path) -> RNNModel:
    check_state_dict(state_dict, hyper, path)
    model = hyper.build()
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ReportgenError(
            f"{path}: the state dict does not fit the model ({first}); give the checkpoint of "
            "a whole pytorch/examples RNNModel"
        ) from None
    return model


def load_checkpoint(path: Path, allow_unsafe_pickle: bool = False,
                    rnn_type: str | None = None) -> LoadedModel:
    """Load any of the three formats into an `RNNModel` in eval mode on the CPU.

    `rnn_type` settles what a bare state dict cannot say (RNN_TANH against RNN_RELU).
    """
    path = Path(path)
    if not path.exists():
        raise ReportgenError(f"{path}: no such checkpoint file; check the path")
    if path.is_dir():
        raise ReportgenError(f"{path}: is a folder, expected a checkpoint file (.pt)")
    sha256 = file_sha256(path)
    payload = _read_pickle(path, allow_unsafe_pickle)
    if isinstance(payload, RNNModel) or (allow_unsafe_pickle and _looks_like_rnn_model(payload)):
        loaded = _from_pickled_module(payload, path, sha256)
    elif isinstance(payload, dict) and payload.get("format") == OWN_FORMAT:
        loaded = _from_own_format(payload, path, sha256)
    elif isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        hyper = infer_hyperparameters(payload, rnn_type, path=path)
        model = model_from_state_dict(payload, hyper, path)
        loaded = LoadedModel(model, hyper, "state dict", sha256)
    else:
        raise ReportgenError(
            f"{path}: holds a {type(payload).__name__}, not an RNNModel, a state dict or a "
            "reportgen checkpoint"
        )
    if rnn_type is not None and rnn_type != loaded.hyperparameters.rnn_type:
        raise ReportgenError(
            f"--rnn-type {rnn_type} does not fit {path}, whose model is "
            f"{loaded.hyperparameters.rnn_type}; leave --rnn-type out, it is for state dicts"
        )
    check_finite(loaded.model, path)
    loaded.model.eval()
    return loaded


def check_finite(model: nn.Module, path: Path) -> None:
    """Refuse weights that hold Inf or NaN: every log p would be NaN, and so the perplexity and
    every figure, with no error. Training that diverged leaves such weights."""
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            values = "value that is" if bad == 1 else "values that are"
            raise ReportgenError(
                f"{path}: the weight {name} holds {bad:,} {values} not finite (Inf or NaN); the "
                "training diverged or the file is damaged: give a checkpoint of a model that "
                "trained to a finite loss"
            )


def _looks_like_rnn_model(payload: Any) -> bool:
    return isinstance(payload, nn.Module) and all(
        hasattr(payload, name) for name in ("encoder", "rnn", "decoder", "rnn_type")
    )


def _from_pickled_module(module: nn.Module, path: Path, sha256: str) -> LoadedModel:
    """Rebuild our own module from the pickled one, so every model has the same code."""
    if module.rnn_type not in RNN_TYPES:
        raise ReportgenError(f"{path}: rnn_type {module.rnn_type!r} is not one of {', '.join(RNN_TYPES)}")
    try:
        hyper = Hyperparameters(
            rnn_type=module.rnn_type,
            ntoken=int(module.encoder.num_embeddings),
            emsize=int(module.encoder.embedding_dim),
            nhid=int(module.nhid),
            nlayers=int(module.nlayers),
            dropout=float(module.drop.p) if hasattr(module, "drop") else None,
            tied=module.decoder.weight is module.encoder.weight,
        )
    except (AttributeError, TypeError, ValueError) as error:
        raise ReportgenError(f"{path}: a damaged RNNModel pickle ({type(error).__name__}: "
                             f"{str(error)[:80]})") from None
    for name in SIZE_LIMITS:
        check_size(name, getattr(hyper, name), path)
    model = model_from_state_dict(module.state_dict(), hyper, path)
    return LoadedModel(model, hyper, "pytorch-examples pickle", sha256)


def _from_own_format(payload: dict[str, Any], path: Path, sha256: str) -> LoadedModel:
    missing = [key for key in ("hyperparameters", "state_dict") if key not in payload]
    if missing:
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (it lacks "
                             f"{' and '.join(missing)})")
    hyper = checked_hyperparameters(payload["hyperparameters"], path)
    vocabulary = payload.get("vocabulary")
    if vocabulary is not None and not (isinstance(vocabulary, list) and all(
            isinstance(word, str) for word in vocabulary)):
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (its vocabulary is not a "
                             "list of words)")
    if vocabulary is not None and len(vocabulary) != hyper.ntoken:
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (its vocabulary has "
                             f"{len(vocabulary):,} words, its model {hyper.ntoken:,})")
    model = model_from_state_dict(payload["state_dict"], hyper, path)
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (its metadata is a "
                             f"{type(metadata).__name__}, not a table)")
    return LoadedModel(model, hyper, "reportgen", sha256, vocabulary, dict(metadata))
