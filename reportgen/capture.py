"""Capture: run a model over token ids and record every layer's states and log p(next token).

States are stored under one naming scheme, `StateKey = (layer, state)`, with `layer` 1-based
and `state` either "h" (hidden) or "c" (cell, LSTM only). The same names appear in files,
pages and exports, written as `L1-h`.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from reportgen.errors import ReportgenError
from reportgen.model import RNNModel, resolve_device
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

    chunk_size: int = 2048  # tokens per recurrent pass; the state carries across chunks
    dtype: str = "float32"  # storage of the states: "float32" or "float16"
    device: str = "auto"  # "auto" (a GPU when there is one), "cpu" or "cuda"
    progress: bool | None = None  # None: only when stderr is a terminal

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float16"):
            raise ReportgenError(f"capture dtype must be float32 or float16, not {self.dtype!r}")
        if self.chunk_size < 1:
            raise ReportgenError(f"capture chunk size must be positive, not {self.chunk_size}")


def single_layer_modules(model: RNNModel, device: torch.device) -> list[nn.RNNBase]:
    """One single-layer copy of the recurrent module per layer, on `device`, so each layer's
    whole h sequence comes out of one fast cuDNN/oneDNN call instead of only the top layer's."""
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
class CellGates:
    """The input, forget and cell-candidate rows of one LSTM layer's weights, transposed.

    The output gate is left out: c_t = f_t * c_{t-1} + i_t * g_t never needs it, which saves a
    quarter of the matrix products that recover c.
    """

    w_ih_t: torch.Tensor  # (in, 3H)
    w_hh_t: torch.Tensor  # (H, 3H)
    bias: torch.Tensor  # (3H,)

    @classmethod
    def of(cls, layer: nn.LSTM) -> CellGates:
        rows = 3 * layer.hidden_size  # torch's gate order is i, f, g, o
        return cls(
            w_ih_t=layer.weight_ih_l0[:rows].T.contiguous(),
            w_hh_t=layer.weight_hh_l0[:rows].T.contiguous(),
            bias=(layer.bias_ih_l0[:rows] + layer.bias_hh_l0[:rows]).contiguous(),
        )


def lstm_cell_states(
    gates: CellGates, inputs: torch.Tensor, hs: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
) -> torch.Tensor:
    """Recover every c_t (S, H) of one LSTM layer from its input (S, in) and h (S, H) sequences.

    The gates depend on h_{t-1}, which `nn.LSTM` already gave us, so they come out of one
    batched matrix product; only c_t = f_t * c_{t-1} + i_t * g_t is left as a recurrence, one
    fused elementwise op a step. This is exact, unlike c = atanh(h / o), which loses precision
    as cells saturate and cannot recover |c| above about 8.7 in float32.
    """
    h_prev = torch.cat([h0, hs[:-1]])  # (S, H)
    pre = torch.addmm(gates.bias, inputs, gates.w_ih_t).addmm_(h_prev, gates.w_hh_t)  # (S, 3H)
    i, f, g = pre.chunk(3, dim=1)
    update = torch.sigmoid(i).mul_(torch.tanh(g))  # (S, H)
    forget = torch.sigmoid(f)  # (S, H)
    cs = torch.empty_like(update)
    previous = c0
    for t in range(update.shape[0]):
        previous = torch.addcmul(update[t], forget[t], previous, out=cs[t])
    return cs


@dataclass
class _CarriedState:
    """Each layer's last h (and c) at the end of a chunk, the start of the next."""

    h: list[torch.Tensor]  # nlayers x (H,)
    c: list[torch.Tensor]  # nlayers x (H,), LSTM only


def run_layers(
    embedding: torch.Tensor, layers: list[nn.RNNBase], gates: list[CellGates | None],
    ids: torch.Tensor, carried: _CarriedState,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """h and c (each S x H) of every layer for one chunk of ids (S,); `embedding` is the
    encoder's (V, E) weight."""
    x = torch.nn.functional.embedding(ids, embedding)  # (S, E)
    hs, cs = [], []
    for index, layer in enumerate(layers):
        h0 = carried.h[index]
        if isinstance(layer, nn.LSTM):
            c0 = carried.c[index]
            out, (hn, cn) = layer(x.unsqueeze(1), (h0.view(1, 1, -1), c0.view(1, 1, -1)))
            h = out[:, 0]  # (S, H)
            cs.append(lstm_cell_states(gates[index], x, h, h0.view(1, -1), c0))
            carried.c[index] = cn.view(-1)
        else:
            out, hn = layer(x.unsqueeze(1), h0.view(1, 1, -1))
            h = out[:, 0]
        carried.h[index] = hn.view(-1)
        hs.append(h)
        x = h
    return hs, cs


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
    maximum, and exp runs in place over the logits to get the log-sum-exp.
    """

    def __init__(self, decoder: nn.Linear, device: torch.device) -> None:
        self.bias = decoder.bias.detach().to(device)  # (V,)
        self.weight_t = decoder.weight.detach().T.to(device).contiguous()  # (H, V)
        self.vocabulary_size = self.weight_t.shape[1]
        self.rows = max(1, LOG_PROBS_PER_BLOCK // self.vocabulary_size)
        self.buffer = torch.empty(self.rows, self.vocabulary_size, device=self.bias.device)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(S, V) logits in the buffer, S <= self.rows."""
        return torch.addmm(self.bias, h, self.weight_t, out=self.buffer[: len(h)])

    def predict(self, h: torch.Tensor, next_ids: torch.Tensor,
                k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log p(next) (n,), top ids (S, k) and their log p (S, k) for h (S, H); n <= S rows
        have a next token."""
        logits = self.logits(h)  # (S, V)
        next_logits = logits[: len(next_ids)].gather(1, next_ids.unsqueeze(1)).squeeze(1)
        top_values, top_ids = logits.topk(k, dim=1)  # (S, k), sorted, so column 0 is the max
        row_max = top_values[:, :1]
        log_sum_exp = logits.sub_(row_max).exp_().sum(dim=1, keepdim=True).log_().add_(row_max)
        return next_logits - log_sum_exp[: len(next_ids), 0], top_ids, top_values - log_sum_exp

    def store(self, h: torch.Tensor, ids: torch.Tensor, start: int,
              predictions: Predictions) -> None:
        """Decode h (S, H) of positions start.. in blocks that fit the buffer."""
        k = min(TOP_K, self.vocabulary_size)
        for offset in range(0, len(h), self.rows):
            first = start + offset
            block = h[offset : offset + self.rows]
            last = first + len(block)
            next_ids = ids[first + 1 : last + 1]  # one fewer at the text's last position
            log_p, top_ids, top_log_p = self.predict(block, next_ids, k)
            predictions.log_prob_next[first : first + len(next_ids)] = log_p.float().cpu().numpy()
            n_next = len(next_ids)
            predictions.top_ids[first : first + n_next, :k] = top_ids[:n_next].cpu().numpy()
            predictions.top_log_probs[first : first + n_next, :k] = (
                top_log_p[:n_next].float().cpu().numpy())


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


def state_keys(model: RNNModel) -> list[StateKey]:
    states = ("h", "c") if model.rnn_type == "LSTM" else ("h",)
    return [(layer, state) for layer in range(1, model.nlayers + 1) for state in states]


def capture(
    model: RNNModel,
    token_ids: np.ndarray,
    tokens: list[str],
    vocabulary: list[str],
    options: CaptureOptions | None = None,
    folder: Path | None = None,
) -> Capture:
    """Run the model over the text once and keep what every later stage needs.

    With `folder`, every array is written there as a `.npy` file (see `capture_cache`).
    """
    options = options or CaptureOptions()
    n = len(token_ids)
    if n < 2:
        raise ReportgenError("the text needs at least two tokens to predict one")
    device = resolve_device(options.device)  # the model itself is left where it is, as it is
    embedding = model.encoder.weight.detach().to(device)  # (V, E)
    layers = single_layer_modules(model, device)
    gates = [CellGates.of(layer) if isinstance(layer, nn.LSTM) else None for layer in layers]
    decoder = Decoder(model.decoder, device)
    states = {key: allocate(folder, state_name(key), (n, model.nhid), options.dtype)
              for key in state_keys(model)}
    predictions = Predictions(
        log_prob_next=allocate(folder, "log_prob_next", (n,), "float32", np.nan),
        top_ids=allocate(folder, "top_ids", (n, TOP_K), "int64", -1),
        top_log_probs=allocate(folder, "top_log_probs", (n, TOP_K), "float32", np.nan),
    )
    ids = torch.as_tensor(np.asarray(token_ids, dtype=np.int64), device=device)
    zeros = [torch.zeros(model.nhid, device=device) for _ in layers]
    carried = _CarriedState(h=list(zeros), c=[z.clone() for z in zeros])
    with torch.inference_mode(), Progress(
        "capture", n, "tokens", **progress_enabled(options.progress)
    ) as bar:
        for start in range(0, n, options.chunk_size):
            stop = min(start + options.chunk_size, n)
            hs, cs = run_layers(embedding, layers, gates, ids[start:stop], carried)
            for index, h in enumerate(hs, start=1):
                states[(index, "h")][start:stop] = h.cpu().numpy()
            for index, c in enumerate(cs, start=1):
                states[(index, "c")][start:stop] = c.cpu().numpy()
            decoder.store(hs[-1], ids, start, predictions)
            bar.advance(stop - start)
    return Capture(
        token_ids=np.asarray(token_ids, dtype=np.int64),
        tokens=list(tokens),
        states=states,
        log_prob_next=predictions.log_prob_next,
        top_ids=predictions.top_ids,
        top_log_probs=predictions.top_log_probs,
        vocabulary=list(vocabulary),
    )
