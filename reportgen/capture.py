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
class StreamRecord:
    """How the capture split the text into parallel streams, and how close their boundaries
    came to the one-stream states; for the overview page and `report.json`."""

    streams: int = 1  # B, contiguous segments run as one batch
    burn_in: int = 0  # K, tokens each stream but the first ran before its segment at first
    largest_burn_in: int = 0  # the longest tried, after doubling where boundaries failed
    boundary_difference: float = 0.0  # largest |h or c| difference at any accepted boundary
    doubled: int = 0  # boundaries whose burn-in was doubled at least once
    fallbacks: int = 0  # segments run as one stream on from the previous segment's end


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
    decoder_dtype: str = "float32"  # the decoder's precision that gave the log probabilities
    decoder_error: float | None = None  # largest |log p| error of bfloat16, where it was tried
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


DECODER_DTYPES = ("float32", "bfloat16")
DECODER_TOLERANCE = 1e-3  # largest |log p| error a bfloat16 decoder may make and still be used
DECODER_CHECK_ROWS = 64  # positions the bfloat16 decoder is checked on against float32
LOG_PROBS_PER_BLOCK = 1 << 24  # decoder outputs held at once: 64 MB of float32 logits
BOUNDARY_TOLERANCE = 1e-4  # largest |h or c| difference in any unit at a verified boundary
BURN_IN = 128  # tokens each stream first runs before its segment, from a zero state
MAX_BURN_IN = 4096  # a boundary that still fails at this burn-in falls back to one stream
WIDE_LAYER = 1024  # units from which a layer's recurrent weights (16 MB) outgrow the caches
STREAMS_NARROW, STREAMS_WIDE = 32, 64  # streams below and from WIDE_LAYER: see choose_streams
SEGMENT_BURN_INS = 8  # a segment is at least this many burn-ins long: burn-in costs <= 1/8


@dataclass
class CaptureOptions:
    """How to run the capture; none of these change the numbers beyond float rounding."""

    chunk_size: int = 2048  # tokens per recurrent pass, over all streams together
    streams: int = 0  # parallel streams; 0 chooses them from the model's width and the text
    burn_in: int = BURN_IN  # tokens each stream runs before its segment, doubled where needed
    dtype: str = "float32"  # storage of the states: "float32" or "float16"
    decoder_dtype: str = "float32"  # "bfloat16" is used only where it stays within 1e-3
    device: str = "auto"  # "auto" (a GPU when there is one), "cpu" or "cuda"
    progress: bool | None = None  # None: only when stderr is a terminal

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float16"):
            raise ReportgenError(f"capture dtype must be float32 or float16, not {self.dtype!r}")
        if self.decoder_dtype not in DECODER_DTYPES:
            raise ReportgenError(
                f"decoder dtype must be float32 or bfloat16, not {self.decoder_dtype!r}")
        if self.chunk_size < 1:
            raise ReportgenError(f"capture chunk size must be positive, not {self.chunk_size}")
        if self.streams < 0:
            raise ReportgenError(f"capture streams must be 0 (chosen) or more, not {self.streams}")
        if self.burn_in < 1:
            raise ReportgenError(f"capture burn-in must be at least 1 token, not {self.burn_in}")


def single_layer_modules(model: RNNModel, device: torch.device) -> list[nn.RNNBase]:
    """One single-layer copy of the recurrent module per layer, on `device`: the capture steps
    its LSTM layers by hand from these weights, and runs its GRU and plain RNN layers whole."""
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
class LstmWeights:
    """One LSTM layer's weights, transposed for `x @ W`, with its two biases summed."""

    w_ih_t: torch.Tensor  # (in, 4H), torch's gate order i, f, g, o
    w_hh_t: torch.Tensor  # (H, 4H)
    bias: torch.Tensor  # (4H,)

    @classmethod
    def of(cls, layer: nn.LSTM) -> LstmWeights:
        return cls(w_ih_t=layer.weight_ih_l0.detach().T.contiguous(),
                   w_hh_t=layer.weight_hh_l0.detach().T.contiguous(),
                   bias=(layer.bias_ih_l0 + layer.bias_hh_l0).detach().contiguous())


@dataclass
class LayerState:
    """One layer's state in every stream: h, and c for an LSTM layer."""

    h: torch.Tensor  # (B, H)
    c: torch.Tensor | None  # (B, H), LSTM only

    def select(self, streams: torch.Tensor) -> LayerState:
        return LayerState(self.h[streams].clone(),
                          None if self.c is None else self.c[streams].clone())


def lstm_layer(weights: LstmWeights, x: torch.Tensor,
               state: LayerState) -> tuple[torch.Tensor, torch.Tensor]:
    """h and c (each S, B, H) of one LSTM layer over the inputs x (S, B, in) of B streams,
    recorded as the recurrence runs; `state` moves on to the last step.

    The input products of every step come out of one matrix product before the loop; each step
    then does one fused gate product over the B streams, (B, H) @ (H, 4H), and its elementwise
    update. c_t is kept as it is computed, so nothing is recomputed afterwards, and it is exact,
    unlike c = atanh(h / o), which loses precision as cells saturate and cannot recover |c|
    above about 8.7 in float32.
    """
    steps, streams, _ = x.shape
    width = weights.w_hh_t.shape[0]
    pre = torch.addmm(weights.bias, x.reshape(steps * streams, -1), weights.w_ih_t)
    pre = pre.view(steps, streams, 4 * width)  # (S, B, 4H)
    hs = torch.empty(steps, streams, width, device=x.device)  # (S, B, H)
    cs = torch.empty_like(hs)  # (S, B, H)
    gates = torch.empty(streams, 4 * width, device=x.device)  # (B, 4H), reused every step
    h, c = state.h, state.c
    assert c is not None
    for t in range(steps):
        torch.addmm(pre[t], h, weights.w_hh_t, out=gates)
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
        c = torch.addcmul(torch.sigmoid(i).mul_(torch.tanh(g)), torch.sigmoid(f), c, out=cs[t])
        h = torch.mul(torch.sigmoid(o), torch.tanh(c), out=hs[t])
    state.h, state.c = h, c
    return hs, cs


class Recurrence:
    """Every layer of the model over B streams of tokens at once, one chunk of steps a call."""

    def __init__(self, model: RNNModel, device: torch.device) -> None:
        self.device = device
        self.embedding = model.encoder.weight.detach().to(device)  # (V, E)
        self.layers = single_layer_modules(model, device)
        self.weights = [LstmWeights.of(layer) if isinstance(layer, nn.LSTM) else None
                        for layer in self.layers]

    def zero_state(self, streams: int) -> list[LayerState]:
        return [LayerState(torch.zeros(streams, layer.hidden_size, device=self.device),
                           torch.zeros(streams, layer.hidden_size, device=self.device)
                           if isinstance(layer, nn.LSTM) else None)
                for layer in self.layers]

    def run(self, ids: torch.Tensor, state: list[LayerState]
            ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Each layer's h and c (each S, B, H; c None but for LSTM layers) for ids (S, B);
        `state` moves on to the last step."""
        x = torch.nn.functional.embedding(ids, self.embedding)  # (S, B, E)
        out = []
        for layer, weights, carried in zip(self.layers, self.weights, state):
            if weights is not None:
                h, c = lstm_layer(weights, x, carried)
            else:
                h, hn = layer(x, carried.h.unsqueeze(0))  # (S, B, H)
                carried.h, c = hn[0], None
            out.append((h, c))
            x = h
        return out


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

    def __init__(self, decoder: nn.Linear, dtype: str, device: torch.device) -> None:
        self.bias = decoder.bias.detach().to(device)  # (V,)
        self.weight_t = decoder.weight.detach().T.to(device).contiguous()  # (H, V)
        self.vocabulary_size = self.weight_t.shape[1]
        self.rows = max(1, LOG_PROBS_PER_BLOCK // self.vocabulary_size)
        self.buffer = torch.empty(self.rows, self.vocabulary_size, device=self.bias.device)
        self.dtype = dtype
        self.weight_t_low = self.weight_t.bfloat16() if dtype == "bfloat16" else None
        self.error: float | None = None  # measured bfloat16 error in log p, once checked

    def logits(self, h: torch.Tensor, low_precision: bool) -> torch.Tensor:
        """(S, V) logits in the buffer, S <= self.rows."""
        out = self.buffer[: len(h)]
        if low_precision:
            return out.copy_(torch.mm(h.bfloat16(), self.weight_t_low)).add_(self.bias)
        return torch.addmm(self.bias, h, self.weight_t, out=out)

    def log_probs(self, h: torch.Tensor, low_precision: bool) -> torch.Tensor:
        """Whole (S, V) log-probabilities, only for the bfloat16 check."""
        return torch.log_softmax(self.logits(h, low_precision), dim=1)

    def check_low_precision(self, h: torch.Tensor) -> None:
        """Measure the bfloat16 decoder against float32 on the first rows; keep it only when
        its largest log p error is within DECODER_TOLERANCE."""
        sample = h[:DECODER_CHECK_ROWS]
        exact = self.log_probs(sample, low_precision=False).clone()
        approximate = self.log_probs(sample, low_precision=True)
        self.error = float((exact - approximate).abs().max())
        if self.error > DECODER_TOLERANCE:
            self.dtype = "float32"

    def predict(self, h: torch.Tensor, next_ids: torch.Tensor,
                k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log p(next) (n,), top ids (S, k) and their log p (S, k) for h (S, H); n <= S rows
        have a next token."""
        if self.dtype == "bfloat16" and self.error is None:
            self.check_low_precision(h)
        logits = self.logits(h, low_precision=self.dtype == "bfloat16")  # (S, V)
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


def state_keys(model: RNNModel) -> list[StateKey]:
    states = ("h", "c") if model.rnn_type == "LSTM" else ("h",)
    return [(layer, state) for layer in range(1, model.nlayers + 1) for state in states]


def choose_streams(widths: list[int], n_tokens: int, burn_in: int) -> int:
    """B from the model's widest layer and the text's length.

    At batch 1 every token reads each layer's recurrent weights whole, so a wide layer is bound
    by memory bandwidth and more streams share each read: measured for one 2,000-unit layer on
    one thread, batch 1, 8, 32 and 64 gave 232, 358, 623 and 745 tokens/s; for 650 units,
    batch 1, 16, 32 and 64 gave 5.4k, 16.1k, 17.5k and 17.3k. Each segment stays at least
    SEGMENT_BURN_INS burn-ins long, so a short text gets fewer streams, down to one.
    """
    wanted = STREAMS_WIDE if max(widths) >= WIDE_LAYER else STREAMS_NARROW
    return max(1, min(wanted, n_tokens // (SEGMENT_BURN_INS * burn_in)))


@dataclass
class Segment:
    """The part of the text one stream records, and where that stream starts."""

    start: int  # first position recorded
    stop: int  # one past the last
    burn_in: int  # positions run before `start` and discarded
    initial: list[LayerState] | None = None  # a fallback's state at start - 1, each (1, H)

    @property
    def first(self) -> int:
        return self.start - self.burn_in


def boundary_difference(probe: list[LayerState], final: list[LayerState]) -> float:
    """Largest |difference| over every unit of every layer's h and c."""
    largest = 0.0
    for a, b in zip(probe, final):
        largest = max(largest, float((a.h - b.h).abs().max()))
        if a.c is not None and b.c is not None:
            largest = max(largest, float((a.c - b.c).abs().max()))
    return largest


class StreamRunner:
    """Runs segments as one batch of streams and writes what they record into the arrays."""

    def __init__(self, recurrence: Recurrence, decoder: Decoder, ids: torch.Tensor,
                 states: dict[StateKey, np.ndarray], predictions: Predictions, chunk_size: int,
                 bar: Progress) -> None:
        self.recurrence, self.decoder, self.ids = recurrence, decoder, ids
        self.states, self.predictions = states, predictions
        self.chunk_size, self.bar = chunk_size, bar

    def run(self, segments: list[Segment]) -> tuple[list[list[LayerState]],
                                                     list[list[LayerState]]]:
        """Each segment's state at its last burn-in position (its probe) and at its last
        position (its final state), each a list over layers of (1, H) states."""
        count = len(segments)
        device = self.ids.device
        first = torch.tensor([segment.first for segment in segments], device=device)  # (B,)
        lengths = [segment.stop - segment.first for segment in segments]
        state = self.recurrence.zero_state(count)
        for index, segment in enumerate(segments):
            for layer, initial in zip(state, segment.initial or []):
                layer.h[index] = initial.h[0]
                if layer.c is not None and initial.c is not None:
                    layer.c[index] = initial.c[0]
        probes: list[list[LayerState] | None] = [
            segment.initial if segment.initial is not None else None for segment in segments]
        finals: list[list[LayerState] | None] = [None] * count
        steps = -(-self.chunk_size // count)
        last = len(self.ids) - 1
        for offset in range(0, max(lengths), steps):
            span = min(steps, max(lengths) - offset)
            local = torch.arange(offset, offset + span, device=device)  # (S,)
            positions = (first.unsqueeze(0) + local.unsqueeze(1)).clamp(max=last)  # (S, B)
            out = self.recurrence.run(self.ids[positions], state)  # per layer (S, B, H)
            for index, segment in enumerate(segments):
                self.keep(out, index, offset, span, segment, lengths[index], probes, finals)
            self.decode(out[-1][0], segments, offset, span)
        return probes, finals  # type: ignore[return-value]

    def keep(self, out: list[tuple[torch.Tensor, torch.Tensor | None]], index: int, offset: int,
             span: int, segment: Segment, length: int, probes: list, finals: list) -> None:
        """Stream `index`'s recorded positions into the arrays, and its probe and final state
        when they fall in this pass."""
        def at(step: int) -> list[LayerState]:
            return [LayerState(h[step - offset, index : index + 1].clone(),
                               None if c is None else c[step - offset, index : index + 1].clone())
                    for h, c in out]

        if segment.burn_in and offset <= segment.burn_in - 1 < offset + span:
            probes[index] = at(segment.burn_in - 1)
        if offset <= length - 1 < offset + span:
            finals[index] = at(length - 1)
        begin, end = max(offset, segment.burn_in), min(offset + span, length)
        if end <= begin:
            return
        rows = slice(segment.first + begin, segment.first + end)
        for layer, (h, c) in enumerate(out, start=1):
            self.states[(layer, "h")][rows] = h[begin - offset : end - offset, index].cpu().numpy()
            if c is not None:
                self.states[(layer, "c")][rows] = (
                    c[begin - offset : end - offset, index].cpu().numpy())
        self.bar.advance(end - begin)

    def decode(self, top: torch.Tensor, segments: list[Segment], offset: int, span: int) -> None:
        """The decoder over the top layer's h (S, B, H) at every recorded position of the pass."""
        blocks, positions = [], []
        for index, segment in enumerate(segments):
            begin = max(offset, segment.burn_in)
            end = min(offset + span, segment.stop - segment.first)
            if end > begin:
                blocks.append(top[begin - offset : end - offset, index])
                positions.append(torch.arange(segment.first + begin, segment.first + end,
                                              device=top.device))
        if blocks:
            self.decoder.store(torch.cat(blocks), torch.cat(positions), self.ids,
                               self.predictions)


def run_streams(runner: StreamRunner, n_tokens: int, streams: int, burn_in: int) -> StreamRecord:
    """The whole text as `streams` contiguous segments in one batch, each verified at its start.

    Stream b + 1 starts `burn_in` tokens before its segment, from a zero state, and those
    states are discarded. At its last burn-in position it must agree with stream b, which
    recorded that position, within BOUNDARY_TOLERANCE in every unit of every layer's h and c:
    then it carries on from the state one stream would have had there, and every later state is
    that stream's up to the rounding the check allows, since the recurrence forgets its start.
    A boundary that fails has its burn-in doubled and its segment run again (all such
    segments together); past MAX_BURN_IN, or once the burn-in reaches the text's start, the
    segment runs as one stream on from stream b's last state, which is exact by construction.
    Each stream's last state is checked against the next stream's probe again whenever either
    changes.
    """
    bounds = [round(b * n_tokens / streams) for b in range(streams + 1)]
    segments = [Segment(bounds[b], bounds[b + 1], min(burn_in, bounds[b]) if b else 0)
                for b in range(streams)]
    probes: list[list[LayerState]] = [[] for _ in segments]
    finals: list[list[LayerState]] = [[] for _ in segments]

    def execute(indices: list[int]) -> None:
        found = runner.run([segments[index] for index in indices])
        for index, probe, final in zip(indices, *found):
            probes[index], finals[index] = probe, final

    execute(list(range(streams)))
    doubled, fallbacks = set(), set()
    largest = max(segment.burn_in for segment in segments)
    while True:
        differences = [boundary_difference(probes[b], finals[b - 1]) for b in range(1, streams)]
        failing = [b for b, difference in enumerate(differences, start=1)
                   if difference > BOUNDARY_TOLERANCE]
        if not failing:
            break
        longer = [b for b in failing if segments[b].initial is None
                  and segments[b].burn_in < bounds[b] and 2 * segments[b].burn_in <= MAX_BURN_IN]
        if longer:
            for b in longer:
                segments[b].burn_in = min(2 * segments[b].burn_in, bounds[b])
                largest = max(largest, segments[b].burn_in)
            doubled.update(longer)
            execute(longer)
            continue
        b = failing[0]
        segments[b] = Segment(bounds[b], bounds[b + 1], 0, finals[b - 1])
        fallbacks.add(b)
        execute([b])
    return StreamRecord(
        streams=streams, burn_in=burn_in if streams > 1 else 0,
        largest_burn_in=largest,
        boundary_difference=max(differences, default=0.0),
        doubled=len(doubled), fallbacks=len(fallbacks))


def capture(
    model: RNNModel,
    token_ids: np.ndarray,
    tokens: list[str],
    vocabulary: list[str],
    options: CaptureOptions | None = None,
    folder: Path | None = None,
) -> Capture:
    """Run the model over the text once and keep what every later stage needs.

    The text runs as parallel streams with verified burn-in (`run_streams`); `options.streams`
    of 1 runs it as one stream. With `folder`, every array is written there as a `.npy` file
    (see `capture_cache`).
    """
    options = options or CaptureOptions()
    n = len(token_ids)
    if n < 2:
        raise ReportgenError("the text needs at least two tokens to predict one")
    device = resolve_device(options.device)  # the model itself is left where it is, as it is
    recurrence = Recurrence(model, device)
    widths = [layer.hidden_size for layer in recurrence.layers]
    streams = options.streams or choose_streams(widths, n, options.burn_in)
    streams = min(streams, n)
    decoder = Decoder(model.decoder, options.decoder_dtype, device)
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
        runner = StreamRunner(recurrence, decoder, ids, states, predictions, options.chunk_size,
                              bar)
        record = run_streams(runner, n, streams, options.burn_in)
    return Capture(
        token_ids=np.asarray(token_ids, dtype=np.int64),
        tokens=list(tokens),
        states=states,
        log_prob_next=predictions.log_prob_next,
        top_ids=predictions.top_ids,
        top_log_probs=predictions.top_log_probs,
        vocabulary=list(vocabulary),
        decoder_dtype=decoder.dtype,
        decoder_error=decoder.error,
        streams=record,
    )
