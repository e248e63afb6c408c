"""Capture: run a model over token ids and record every layer's states and log p(next token).

States are stored under one naming scheme, `StateKey = (layer, state)`, with `layer` 1-based
and `state` either "h" (hidden) or "c" (cell, LSTM only). The same names appear in files,
pages and exports, written as `L1-h`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from reportgen.errors import ReportgenError
from reportgen.model import RNNModel
from reportgen.progress import Progress

StateKey = tuple[int, str]  # (layer 1-based, "h" | "c")
TOP_K = 5  # predictions kept per position for the expectancy tooltips


def state_name(key: StateKey) -> str:
    """`(1, "h")` -> `"L1-h"`, the name used in file names, pages and exports."""
    layer, state = key
    return f"L{layer}-{state}"


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


@dataclass
class CaptureOptions:
    """How to run the capture; none of these change the numbers beyond float rounding."""

    chunk_size: int = 2048  # tokens per forward pass; the state carries across chunks
    dtype: str = "float32"  # storage of the states: "float32" or "float16"
    device: str = "cpu"
    progress: bool | None = None  # None: only when stderr is a terminal


def single_layer_modules(model: RNNModel) -> list[nn.RNNBase]:
    """One single-layer copy of the recurrent module per layer, so each layer's whole h
    sequence comes out of one fast cuDNN/MKL call instead of only the top layer's."""
    rnn = model.rnn
    layers = []
    for layer in range(rnn.num_layers):
        input_size = rnn.input_size if layer == 0 else rnn.hidden_size
        kwargs = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
        single = type(rnn)(input_size, rnn.hidden_size, 1, **kwargs)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(single, f"{name}_l0").copy_(getattr(rnn, f"{name}_l{layer}"))
        layers.append(single.to(next(rnn.parameters()).device).eval())
    return layers


def lstm_cell_states(
    layer: nn.LSTM, inputs: torch.Tensor, hs: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
) -> torch.Tensor:
    """Recover every c_t of one LSTM layer from its input and h sequences.

    The gates depend on h_{t-1}, which `nn.LSTM` already gave us, so they come out of one
    batched matrix product; only c_t = f_t * c_{t-1} + i_t * g_t is left as a recurrence, one
    fused elementwise op a step. This is exact, unlike c = atanh(h / o), which loses precision
    as cells saturate and cannot recover |c| above about 8.7 in float32.
    """
    h_prev = torch.cat([h0, hs[:-1]])  # (S, H)
    gates = inputs @ layer.weight_ih_l0.T + h_prev @ layer.weight_hh_l0.T
    gates += layer.bias_ih_l0 + layer.bias_hh_l0  # (S, 4H), torch's order: i, f, g, o
    i, f, g, o = gates.chunk(4, dim=1)
    update = torch.sigmoid(i) * torch.tanh(g)  # (S, H)
    forget = torch.sigmoid(f)  # (S, H)
    cs = torch.empty_like(update)
    previous = c0
    for t in range(update.shape[0]):
        previous = torch.addcmul(update[t], forget[t], previous, out=cs[t])
    return cs


@contextmanager
def without_onednn() -> Iterator[None]:
    """Run the recurrent layers on PyTorch's own CPU kernels rather than oneDNN's.

    Measured for a 650-unit LSTM layer on 2048 tokens (2 cores): oneDNN takes 1.0-1.4 s a call,
    after a first call of 4.6 s for each new sequence length; PyTorch's own kernel 0.4-0.5 s.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a TF32 notice about Intel GPUs
        with torch.backends.mkldnn.flags(enabled=False):
            yield


@dataclass
class _CarriedState:
    """Each layer's last h (and c) at the end of a chunk, the start of the next."""

    h: list[torch.Tensor]  # nlayers x (H,)
    c: list[torch.Tensor]  # nlayers x (H,), LSTM only


def capture_chunk(
    model: RNNModel, layers: list[nn.RNNBase], ids: torch.Tensor, carried: _CarriedState
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """h and c of every layer, and the decoder's log-softmax, for one chunk of ids (S,)."""
    x = model.encoder(ids)  # (S, E)
    hs, cs = [], []
    for index, layer in enumerate(layers):
        h0 = carried.h[index]
        if isinstance(layer, nn.LSTM):
            c0 = carried.c[index]
            out, (hn, cn) = layer(x.unsqueeze(1), (h0.view(1, 1, -1), c0.view(1, 1, -1)))
            h = out[:, 0]  # (S, H)
            cs.append(lstm_cell_states(layer, x, h, h0.view(1, -1), c0))
            carried.c[index] = cn.view(-1)
        else:
            out, hn = layer(x.unsqueeze(1), h0.view(1, 1, -1))
            h = out[:, 0]
        carried.h[index] = hn.view(-1)
        hs.append(h)
        x = h
    log_probs = torch.log_softmax(model.decoder(x), dim=1)  # (S, V)
    return hs, cs, log_probs


def capture(
    model: RNNModel,
    token_ids: np.ndarray,
    tokens: list[str],
    vocabulary: list[str],
    options: CaptureOptions | None = None,
) -> Capture:
    """Run the model over the text once and keep what every later stage needs."""
    options = options or CaptureOptions()
    if options.dtype not in ("float32", "float16"):
        raise ReportgenError(f"capture dtype must be float32 or float16, not {options.dtype!r}")
    n = len(token_ids)
    if n < 2:
        raise ReportgenError("the text needs at least two tokens to predict one")
    device = torch.device(options.device)
    model = model.to(device).eval()
    layers = single_layer_modules(model)
    nhid = model.nhid
    is_lstm = model.rnn_type == "LSTM"
    states = {
        (layer, state): np.empty((n, nhid), dtype=options.dtype)
        for layer in range(1, model.nlayers + 1)
        for state in (("h", "c") if is_lstm else ("h",))
    }
    log_prob_next = np.full(n, np.nan, dtype=np.float32)  # (T,)
    top_ids = np.full((n, TOP_K), -1, dtype=np.int64)  # (T, K)
    top_log_probs = np.full((n, TOP_K), np.nan, dtype=np.float32)  # (T, K)
    ids = torch.as_tensor(np.asarray(token_ids, dtype=np.int64), device=device)
    zeros = [torch.zeros(nhid, device=device) for _ in layers]
    carried = _CarriedState(h=list(zeros), c=[z.clone() for z in zeros])
    enabled = options.progress
    with torch.inference_mode(), without_onednn(), Progress(
        "capture", n, "tokens", **({} if enabled is None else {"enabled": enabled})
    ) as bar:
        for start in range(0, n, options.chunk_size):
            stop = min(start + options.chunk_size, n)
            hs, cs, log_probs = capture_chunk(model, layers, ids[start:stop], carried)
            for index, h in enumerate(hs, start=1):
                states[(index, "h")][start:stop] = h.cpu().numpy()
            for index, c in enumerate(cs, start=1):
                states[(index, "c")][start:stop] = c.cpu().numpy()
            store_predictions(log_probs, ids, start, stop, log_prob_next, top_ids, top_log_probs)
            bar.advance(stop - start)
    return Capture(
        token_ids=np.asarray(token_ids, dtype=np.int64),
        tokens=list(tokens),
        states=states,
        log_prob_next=log_prob_next,
        top_ids=top_ids,
        top_log_probs=top_log_probs,
        vocabulary=list(vocabulary),
    )


def store_predictions(
    log_probs: torch.Tensor,
    ids: torch.Tensor,
    start: int,
    stop: int,
    log_prob_next: np.ndarray,
    top_ids: np.ndarray,
    top_log_probs: np.ndarray,
) -> None:
    """Keep log p of the token that really came next, and the model's top guesses."""
    n_next = min(stop, len(ids) - 1) - start  # the text's last token has no next one
    next_ids = ids[start + 1 : start + 1 + n_next]
    log_prob_next[start : start + n_next] = (
        log_probs[:n_next].gather(1, next_ids.unsqueeze(1)).squeeze(1).float().cpu().numpy()
    )
    k = min(TOP_K, log_probs.shape[1])
    values, indices = log_probs[:n_next].topk(k, dim=1)
    top_ids[start : start + n_next, :k] = indices.cpu().numpy()
    top_log_probs[start : start + n_next, :k] = values.float().cpu().numpy()
