"""Capture: run a model over token ids and record every layer's states and log p(next token).

States are stored under one naming scheme, `StateKey = (layer, state)`, with `layer` 1-based
and `state` either "h" (hidden) or "c" (cell, LSTM only). The same names appear in files,
pages and exports, written as `L1-h`.
"""

from __future__ import annotations

import copy
import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from reportgen.capture.recurrence import Recurrence
from reportgen.capture.split_softmax import SplitSoftmax
from reportgen.capture.streams import (
    BURN_IN,
    StreamRecord,
    StreamRunner,
    choose_streams,
    run_streams,
)
from reportgen.errors import ReportgenError
from reportgen.inputs.model import LayeredModel, RNNModel, resolve_device
from reportgen.progress import Progress, progress_enabled

StateKey = tuple[int, str]  # (layer 1-based, "h" | "c")
TOP_K = 5  # predictions kept per position for the expectancy tooltips
STATE_NAME = re.compile(r"L([1-9][0-9]*)-([hc])")  # what state_name writes


def state_name(key: StateKey) -> str:
    """`(1, "h")` -> `"L1-h"`, the name used in file names, pages and exports."""
    layer, state = key
    return f"L{layer}-{state}"


def parse_state_name(name: str) -> StateKey:
    """`"L1-h"` -> `(1, "h")`, the inverse of `state_name`; the one place that reads the names
    back, for the capture cache's files and the --maps flag. Raises ValueError for any other
    string: layers are 1-based and the states are `h` (hidden) or `c` (cell)."""
    match = STATE_NAME.fullmatch(name)
    if not match:
        raise ValueError(f"{name!r} is not a layer and state; write them as L1-h or L2-c")
    return int(match.group(1)), match.group(2)


@dataclass
class Capture:
    """Everything the analyses need from the model, and no reference to the model itself.

    Position t holds the states after the token at t was read, and the log probability the
    model gave to the token at t + 1. The last position has no next token: its `log_prob_next`
    is NaN and its `top_ids` are -1.
    """

    token_ids: np.ndarray  # (T,) int64
    tokens: list[str]  # T token strings, untrusted corpus text
    states: dict[StateKey, np.ndarray]  # each (T, H) float32 or float16
    log_prob_next: np.ndarray  # (T,) float32, NaN at the last position
    top_ids: np.ndarray  # (T, TOP_K) int64, the model's most likely next tokens
    top_log_probs: np.ndarray  # (T, TOP_K) float32
    vocabulary: list[str] = field(repr=False)  # id -> word, to name `top_ids`
    streams: StreamRecord = field(default_factory=StreamRecord)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def keys(self) -> list[StateKey]:
        """State keys in report order: layer 1 h, layer 1 c, layer 2 h, ..."""
        return sorted(self.states, key=lambda k: (k[0], k[1] != "h"))

    def perplexity(self) -> float:
        """exp of the mean negative log p(next) over the positions that have a next token."""
        valid = self.log_prob_next[:-1].astype(np.float64)
        return float(np.exp(-valid.mean())) if valid.size else float("nan")


LOG_PROBS_PER_BLOCK = 1 << 24  # decoder outputs held at once: 64 MB of float32 logits


@dataclass
class CaptureOptions:
    """How to run the capture; none of these change the numbers beyond float rounding."""

    chunk_size: int = 2048  # tokens per recurrent pass, over all streams together
    streams: int = 0  # parallel streams; 0 chooses them from the model's width and the text
    burn_in: int = BURN_IN  # tokens each stream runs before its segment, doubled where needed
    dtype: str = "float32"  # storage of the states: "float32" or "float16"
    device: str = "auto"  # "auto" (a GPU when there is one), "cpu" or "cuda"
    progress: bool | None = None  # None: only when stderr is a terminal

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float16"):
            raise ReportgenError(f"capture dtype must be float32 or float16, not {self.dtype!r}")
        if self.chunk_size < 1:
            raise ReportgenError(f"capture chunk size must be positive, not {self.chunk_size}")
        if self.streams < 0:
            raise ReportgenError(f"capture streams must be 0 (chosen) or more, not {self.streams}")
        if self.burn_in < 1:
            raise ReportgenError(f"capture burn-in must be at least 1 token, not {self.burn_in}")


def single_layer_modules(model: RNNModel | LayeredModel,
                         device: torch.device) -> list[nn.RNNBase]:
    """One single-layer copy of the recurrent module per layer, on `device`: the capture steps
    its LSTM layers by hand from these weights (`recurrence.Recurrence`), and runs its GRU and
    plain RNN layers whole. A `LayeredModel`'s layers are single already, each with its own
    input and hidden size."""
    if isinstance(model, LayeredModel):
        return [copy.deepcopy(layer).to(device).eval() for layer in model.rnns]
    rnn = model.rnn
    layers = []
    for layer in range(rnn.num_layers):
        input_size = rnn.input_size if layer == 0 else rnn.hidden_size
        kwargs = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
        single = type(rnn)(input_size, rnn.hidden_size, 1, **kwargs)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(single, f"{name}_l0").copy_(getattr(rnn, f"{name}_l{layer}"))
        layers.append(single.to(device).eval())
    return layers


@dataclass
class Predictions:
    """What the capture keeps of the decoder's output: one block of positions at a time."""

    log_prob_next: np.ndarray  # (T,) float32, NaN at the last position
    top_ids: np.ndarray  # (T, TOP_K) int64, -1 at the last position
    top_log_probs: np.ndarray  # (T, TOP_K) float32


class Decoder:
    """The output layer and its log-softmax, reduced to log p(next) and the top guesses.

    The (rows, V) logits are the biggest thing the capture computes, so they go into one
    reused buffer, and the log-softmax is never materialised: the top values give the row
    maximum, and exp runs in place over the logits to get the log-sum-exp. A split softmax
    (`reportgen.capture.split_softmax`) normalises the buffer in place instead, cluster by cluster.
    """

    def __init__(self, decoder: nn.Linear, device: torch.device,
                 split: SplitSoftmax | None = None) -> None:
        self.split = split
        self.bias = decoder.bias.detach().to(device)  # (V,)
        self.weight_t = decoder.weight.detach().T.to(device).contiguous()  # (H, V)
        self.vocabulary_size = self.weight_t.shape[1]
        self.rows = max(1, LOG_PROBS_PER_BLOCK // self.vocabulary_size)
        self.buffer = torch.empty(self.rows, self.vocabulary_size, device=self.bias.device)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(S, V) logits in the buffer, S <= self.rows."""
        return torch.addmm(self.bias, h, self.weight_t, out=self.buffer[: len(h)])

    @classmethod
    def of(cls, model: RNNModel | LayeredModel, device: torch.device) -> Decoder:
        """The decoder of `model`, with its split softmax where it has one."""
        return cls(model.decoder, device, SplitSoftmax.of(model, device))

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """Whole (S, V) log-probabilities, in the buffer, S <= self.rows."""
        if self.split is not None:
            return self.split.normalise_(self.logits(h), h)
        return torch.log_softmax(self.logits(h), dim=1)

    def predict(self, h: torch.Tensor, next_ids: torch.Tensor,
                k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log p(next) (n,), top ids (S, k) and their log p (S, k) for h (S, H); n <= S rows
        have a next token."""
        if self.split is not None:
            log_p = self.log_probs(h)  # (S, V)
            next_log_p = log_p[: len(next_ids)].gather(1, next_ids.unsqueeze(1)).squeeze(1)
            top_log_p, top_ids = log_p.topk(k, dim=1)  # (S, k)
            return next_log_p, top_ids, top_log_p
        logits = self.logits(h)  # (S, V)
        next_logits = logits[: len(next_ids)].gather(1, next_ids.unsqueeze(1)).squeeze(1)
        top_values, top_ids = logits.topk(k, dim=1)  # (S, k), sorted, so column 0 is the max
        row_max = top_values[:, :1]
        log_sum_exp = logits.sub_(row_max).exp_().sum(dim=1, keepdim=True).log_().add_(row_max)
        return next_logits - log_sum_exp[: len(next_ids), 0], top_ids, top_values - log_sum_exp

    def store(self, h: torch.Tensor, positions: torch.Tensor, ids: torch.Tensor,
              predictions: Predictions) -> None:
        """Decode h (R, H) of the text's positions (R,), in blocks that fit the buffer; the
        rows may come from several streams, so their positions need not be contiguous."""
        k = min(TOP_K, self.vocabulary_size)
        last = len(ids) - 1
        for offset in range(0, len(h), self.rows):
            block = h[offset : offset + self.rows]  # (r, H)
            at = positions[offset : offset + self.rows]  # (r,)
            log_p, top_ids, top_log_p = self.predict(block, ids[(at + 1).clamp(max=last)], k)
            keep = (at < last).cpu().numpy()  # the text's last position has no next token
            rows = at.cpu().numpy()[keep]
            predictions.log_prob_next[rows] = log_p.float().cpu().numpy()[keep]
            predictions.top_ids[rows, :k] = top_ids.cpu().numpy()[keep]
            predictions.top_log_probs[rows, :k] = top_log_p.float().cpu().numpy()[keep]


def allocate(folder: Path | None, name: str, shape: tuple[int, ...], dtype: str,
             fill: float | None = None) -> np.ndarray:
    """An output array: in memory, or a `.npy` file in `folder` mapped into memory, so the
    states of a long text live on disk and in the page cache rather than in the process."""
    if folder is None:
        array = np.empty(shape, dtype=dtype)
    else:
        path = folder / f"{name}.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        reserve_disk_space(path)
    if fill is not None:
        array[...] = fill
    return array


def reserve_disk_space(path: Path) -> None:
    """Give a new, sparse `.npy` file all its disk blocks now.

    A full disk then fails here with an OSError (ENOSPC), which the cache reports in one line,
    instead of killing the process with SIGBUS at the first write into the mapping that finds
    no free block. File systems without fallocate keep the file sparse.
    """
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise


def next_word_log_probs(model: RNNModel | LayeredModel, h: torch.Tensor) -> torch.Tensor:
    """log p of every word (S, V) after top-layer states h (S, H), as the model's own output
    layer gives it: a log-softmax, or salesforce's split softmax. For any stage that needs the
    model's predictions from states; the capture itself keeps only what `Decoder` reduces."""
    decoder = Decoder.of(model, h.device)
    return torch.cat([decoder.log_probs(h[start : start + decoder.rows]).clone()
                      for start in range(0, len(h), decoder.rows)])


def state_keys(model: RNNModel | LayeredModel) -> list[StateKey]:
    states = ("h", "c") if model.rnn_type == "LSTM" else ("h",)
    return [(layer, state) for layer in range(1, model.nlayers + 1) for state in states]


def capture(
    model: RNNModel | LayeredModel,
    token_ids: np.ndarray,
    tokens: list[str],
    vocabulary: list[str],
    options: CaptureOptions | None = None,
    folder: Path | None = None,
) -> Capture:
    """Run the model over the text once and keep what every later stage needs.

    The text runs as parallel streams with verified burn-in (`streams.run_streams`);
    `options.streams` of 1 runs it as one stream. With `folder`, every array is written there as a `.npy` file
    (see `capture_cache`).
    """
    options = options or CaptureOptions()
    n = len(token_ids)
    if n < 2:
        raise ReportgenError("the text needs at least two tokens to predict one")
    device = resolve_device(options.device)  # the model itself is left where it is, as it is
    recurrence = Recurrence(model.encoder.weight.detach().to(device),  # (V, E)
                            single_layer_modules(model, device))
    widths = [layer.hidden_size for layer in recurrence.layers]
    streams = options.streams or choose_streams(widths, n, options.burn_in)
    streams = min(streams, n)
    decoder = Decoder.of(model, device)
    states = {key: allocate(folder, state_name(key), (n, widths[key[0] - 1]), options.dtype)
              for key in state_keys(model)}
    predictions = Predictions(
        log_prob_next=allocate(folder, "log_prob_next", (n,), "float32", np.nan),
        top_ids=allocate(folder, "top_ids", (n, TOP_K), "int64", -1),
        top_log_probs=allocate(folder, "top_log_probs", (n, TOP_K), "float32", np.nan),
    )
    ids = torch.as_tensor(np.asarray(token_ids, dtype=np.int64), device=device)
    with torch.inference_mode(), Progress(
        "capture", n, "tokens", **progress_enabled(options.progress)
    ) as bar:
        runner = StreamRunner(recurrence, ids, states, options.chunk_size, bar,
                              lambda h, at: decoder.store(h, at, ids, predictions))
        record = run_streams(runner, n, streams, options.burn_in)
    return Capture(
        token_ids=np.asarray(token_ids, dtype=np.int64),
        tokens=list(tokens),
        states=states,
        log_prob_next=predictions.log_prob_next,
        top_ids=predictions.top_ids,
        top_log_probs=predictions.top_log_probs,
        vocabulary=list(vocabulary),
        streams=record,
    )
