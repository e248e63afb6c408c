"""Checkpoints: safe loading of the three formats a model comes in, and our own saving.

`word_language_model/main.py` saves the whole module with `torch.save(model, f)`, a pickle that
names the class `model.RNNModel`. Unpickling arbitrary classes can run arbitrary code, so we load
with `weights_only=True` and map that one name to our own class, which has the same attributes.
Any other class named in the pickle is refused with its name, unless the user passes the
explicit `allow_unsafe_pickle` flag. A checkpoint's sizes and tensors are checked before its
model is built, and its weights are checked to be finite once it is. Separate from
`reportgen.inputs.model`, which is the model itself: training and capture need the model, not the file
formats.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from reportgen.errors import ReportgenError
from reportgen.inputs.layouts import (
    SALESFORCE_PICKLE,
    fastai_model_state,
    from_salesforce_pickle,
    is_salesforce_pickle,
    layered_hyperparameters,
    layered_state,
    pickled_type_name,
    stand_ins,
    state_dict_layout,
    unsupported_class,
)
from reportgen.inputs.legacy_pickle import REFUSED, load_legacy_pickle
from reportgen.inputs.model import (
    RNN_TYPES,
    SIZE_LIMITS,
    Hyperparameters,
    LayeredModel,
    RNNModel,
    check_size,
    check_splits,
    check_widths,
    hyperparameters_of,
    infer_hyperparameters,
)

OWN_FORMAT = "reportgen-checkpoint"
OWN_FORMAT_VERSION = 1
OPTIONAL = ("dropout", "widths", "splits")  # hyperparameters an own checkpoint may leave out


def checked_hyperparameters(raw: Any, path: Path) -> Hyperparameters:
    """Hyperparameters from a checkpoint, each of the right type and within sane limits, before
    anything is allocated: a small file must not make reportgen build a huge model."""
    names = [f.name for f in Hyperparameters.__dataclass_fields__.values()]
    if not isinstance(raw, dict):
        raise ReportgenError(f"{path}: damaged reportgen checkpoint (its hyperparameters are a "
                             f"{type(raw).__name__}, not a table)")
    missing = [name for name in names if name not in raw and name not in OPTIONAL]
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
    widths, splits = raw.get("widths"), raw.get("splits")
    for name, values in (("widths", widths), ("splits", splits)):
        if values is not None and not (isinstance(values, list) and values and all(
                isinstance(v, int) and not isinstance(v, bool) for v in values)):
            raise ReportgenError(f"{path}: damaged reportgen checkpoint ({name} is {values!r}, "
                                 "not a list of whole numbers)")
    if widths is not None:
        check_widths(widths, raw["nlayers"], path)
    if splits is not None:
        check_splits(splits, raw["ntoken"], path)
    return Hyperparameters(raw["rnn_type"], raw["ntoken"], raw["emsize"], raw["nhid"],
                           raw["nlayers"], None if dropout is None else float(dropout),
                           raw["tied"], widths, splits)


@dataclass
class LoadedModel:
    """A model in eval mode with what is known about it."""

    model: RNNModel | LayeredModel
    hyperparameters: Hyperparameters
    format: str  # "pytorch-examples pickle", "state dict", "reportgen" or a `layouts` name
    sha256: str
    vocabulary: list[str] | None = None  # stored by our own format only
    metadata: dict[str, Any] = field(default_factory=dict)  # seed, perplexities, ...


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
    """The classes a pytorch/examples or salesforce pickle of an `RNNModel` may name, and
    nothing more; torch's recurrent modules and the AWD-LSTM's own classes are stand-ins
    (`reportgen.inputs.layouts`) that only take the pickled attributes."""
    return [
        (RNNModel, "model.RNNModel"),
        nn.Dropout,
        nn.Embedding,
        nn.Linear,
        nn.ModuleList,
        set,
        *stand_ins(),
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
                try:
                    return torch.load(path, map_location="cpu", weights_only=True)
                except pickle.UnpicklingError as error:
                    if REFUSED not in str(error):
                        raise
            return load_legacy_pickle(path, _safe_globals())
    except pickle.UnpicklingError as error:
        name = _unsupported_global(error)
        refusal = unsupported_class(name) if name else None
        if refusal:
            raise ReportgenError(f"{path}: the checkpoint holds {refusal}") from None
        if name:
            raise ReportgenError(
                f"{path}: the checkpoint names {name}, which reportgen does not load; it reads "
                "pytorch/examples and AWD-LSTM pickles, state dicts and its own checkpoints "
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
                          path: Path) -> RNNModel | LayeredModel:
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
    if isinstance(payload, dict):
        payload = fastai_model_state(payload)
    if is_salesforce_pickle(payload):
        hyper, state = from_salesforce_pickle(payload, path)
        loaded = LoadedModel(model_from_state_dict(state, hyper, path), hyper, SALESFORCE_PICKLE,
                             sha256)
    elif isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()
                                           ) and state_dict_layout(payload):
        layout = state_dict_layout(payload)
        state = layered_state(payload, layout, path)
        hyper = layered_hyperparameters(state, path, layout)
        loaded = LoadedModel(model_from_state_dict(state, hyper, path), hyper, layout, sha256)
    elif isinstance(payload, RNNModel) or (allow_unsafe_pickle and _looks_like_rnn_model(payload)):
        loaded = _from_pickled_module(payload, path, sha256)
    elif isinstance(payload, dict) and payload.get("format") == OWN_FORMAT:
        loaded = _from_own_format(payload, path, sha256)
    elif isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        hyper = infer_hyperparameters(payload, rnn_type, path=path)
        model = model_from_state_dict(payload, hyper, path)
        loaded = LoadedModel(model, hyper, "state dict", sha256)
    else:
        raise ReportgenError(
            f"{path}: holds a {pickled_type_name(payload)}, not an RNNModel, a state dict or a "
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
    if not hasattr(module, "rnn_type"):  # pytorch/examples' RNNModel always sets it
        raise ReportgenError(f"{path}: a damaged RNNModel pickle (it lacks rnn_type, so its "
                             "cell type is unknown); save its state_dict() and give that "
                             "instead, with --rnn-type for a plain RNN")
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
    legacy = " (legacy format)" if not zipfile.is_zipfile(path) else ""
    return LoadedModel(model, hyper, f"pytorch-examples pickle{legacy}", sha256)


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
