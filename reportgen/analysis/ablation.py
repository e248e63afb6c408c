"""Mean-ablation: what each unit does to the loss (DESIGN.md 3.5, after Lakretz et al. 2019).

A unit is held at its mean over the text at every step, and the recurrence runs on from there,
so the effect carries through time: a unit that remembers an open quote can only hurt the words
many steps later if its held value is fed back. Δ loss at position t is
log p(w_{t+1}) of the intact model minus that of the ablated one, in nats; positive means the
unit helps.

What "held" means:
- an h unit: its value is replaced by the mean after every step, both in what the layer feeds
  back to itself and in what it passes upward (to the next layer, or to the decoder);
- a c unit (LSTM): the cell is replaced by the mean after every step, before h = o * tanh(c), so
  the held cell is what the output gate reads and what the next step forgets from.

Many ablations run at once: one recurrent pass over a batch of ablated copies (the batch
dimension is the ablated unit). Layers below the ablated one are unchanged, so they run once;
the ablated layer is stepped by hand, since a held value must be set between steps; the layers
above and the decoder run over the whole batch with torch's own modules. The ablated layer's
step is checked against `nn.LSTM` in the tests.

GRU and plain RNN layers step with `nn.GRUCell` and `nn.RNNCell`; they have h only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from reportgen.capture.core import Decoder, StateKey, single_layer_modules
from reportgen.errors import ReportgenError
from reportgen.inputs.features import TokenFeatures
from reportgen.inputs.model import RNNModel, resolve_device
from reportgen.progress import Progress, progress_enabled

ABLATION_TOKENS = 500  # default budget: see README, "What a unit does"
HURT_CONTEXTS = 5  # positions kept per unit where its ablation hurts most
BATCH_VALUES = 1 << 25  # floats of one batch's (tokens, copies, units) states: 128 MB
MAX_BATCH = 64  # ablated copies per recurrent pass
SMALL_LAYER = 512  # units below which the ablation's products are too small for two threads


@dataclass
class AblationOptions:
    """How many tokens the ablation runs over, and whether every unit is ablated."""

    tokens: int = ABLATION_TOKENS  # the first N tokens of the text; 0 turns ablation off
    all_units: bool = False  # every unit, not only those that get a page

    def __post_init__(self) -> None:
        if self.tokens < 0 or self.tokens == 1:
            raise ReportgenError(f"--ablation-tokens must be 0 (off) or at least 2, not "
                                 f"{self.tokens}")


@dataclass
class StateAblation:
    """The ablations of one layer and state; row u is the u-th ablated unit."""

    layer: int
    state: str
    units: np.ndarray  # (U,) int64, the ablated units
    held_at: np.ndarray  # (U,) float32, each unit's mean over the text
    delta_loss: np.ndarray  # (U,) float64, mean Δ loss over the scored positions, nats
    feature_delta: np.ndarray  # (U, F) float64, mean Δ loss on each feature's positions; NaN: none
    hurt_positions: np.ndarray  # (U, K) int64, where Δ loss is largest, largest first
    hurt_delta: np.ndarray  # (U, K) float64, Δ loss there

    def row(self, unit: int) -> int | None:
        """The row of `unit`, or None when it was not ablated."""
        found = np.flatnonzero(self.units == unit)
        return int(found[0]) if found.size else None


@dataclass
class AblationResult:
    """Mean-ablation of some units of every layer and state, over the first `n_tokens`."""

    n_tokens: int  # tokens run; positions 0 .. n_tokens - 2 are scored
    all_units: bool  # every unit was ablated, not only the paged ones
    baseline_loss: float  # mean -log p(next) of the intact model over the scored positions
    features: list[str]
    feature_counts: np.ndarray  # (F,) int64, scored positions with each feature
    states: dict[StateKey, StateAblation]

    @property
    def n_scored(self) -> int:
        return self.n_tokens - 1


def ablation_units(model: RNNModel, paged: dict[StateKey, list[int]],
                   all_units: bool) -> dict[StateKey, list[int]]:
    """The units to ablate: the paged ones, or every unit of every layer and state."""
    if not all_units:
        return {key: sorted(units) for key, units in paged.items()}
    return {key: list(range(model.widths[key[0] - 1])) for key in paged}


def ablate(model: RNNModel, token_ids: np.ndarray, units: dict[StateKey, list[int]],
           means: dict[StateKey, np.ndarray], features: TokenFeatures,
           options: AblationOptions, device: str = "auto",
           progress: bool | None = None) -> AblationResult:
    """Δ loss of holding each listed unit at its mean (`means[key]`, (H,) over the whole text),
    over the first `options.tokens` tokens of the text."""
    n = min(options.tokens, len(token_ids))
    if n < 2:
        raise ReportgenError("ablation needs at least two tokens")
    with one_thread() if max(model.widths) < SMALL_LAYER else nullcontext():
        return ablate_on_one_thread(model, token_ids[:n], units, means, features, options,
                                    device, progress)


def ablate_on_one_thread(model: RNNModel, token_ids: np.ndarray,
                         units: dict[StateKey, list[int]], means: dict[StateKey, np.ndarray],
                         features: TokenFeatures, options: AblationOptions, device: str,
                         progress: bool | None) -> AblationResult:
    """`ablate` over all of `token_ids` (n,)."""
    n = len(token_ids)
    runner = AblationRunner(model, np.asarray(token_ids[:n], dtype=np.int64),
                            resolve_device(device))
    baseline = runner.log_probs((1, "h"), np.zeros(0, dtype=np.int64),
                                np.zeros(0, dtype=np.float32))[0]  # (n - 1,), nothing held
    flags = features.matrix()[: n - 1].astype(np.float64)  # (n - 1, F)
    counts = flags.sum(axis=0)  # (F,)
    total = sum(len(chosen) for chosen in units.values())
    states = {}
    with Progress("ablation", total, "units", **progress_enabled(progress)) as bar:
        for key, chosen in units.items():
            chosen_ids = np.asarray(chosen, dtype=np.int64)
            held_at = np.asarray(means[key], dtype=np.float32)[chosen_ids]
            deltas = []
            for start in range(0, len(chosen_ids), runner.batch_size):
                batch = slice(start, start + runner.batch_size)
                ablated = runner.log_probs(key, chosen_ids[batch], held_at[batch])  # (B, n - 1)
                deltas.append(baseline[None, :] - ablated)
                bar.advance(len(chosen_ids[batch]))
            delta = np.concatenate(deltas) if deltas else np.zeros((0, n - 1))  # (U, n - 1)
            states[key] = summarise_state(key, chosen_ids, held_at, delta, flags, counts)
    return AblationResult(n_tokens=n, all_units=options.all_units,
                          baseline_loss=float(-baseline.mean()), features=features.names,
                          feature_counts=counts.astype(np.int64), states=states)


def summarise_state(key: StateKey, units: np.ndarray, held_at: np.ndarray, delta: np.ndarray,
                    flags: np.ndarray, counts: np.ndarray) -> StateAblation:
    """Mean Δ, Δ per feature and the most hurt positions of the units of one layer and state.

    delta: (U, P) Δ loss per unit and scored position; flags: (P, F) 0/1 features.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        feature_delta = (delta @ flags) / counts  # (U, F), NaN where a feature has no position
    k = min(HURT_CONTEXTS, delta.shape[1])
    hurt = np.argsort(-delta, axis=1, kind="stable")[:, :k]  # (U, K)
    return StateAblation(
        layer=key[0], state=key[1], units=units, held_at=held_at,
        delta_loss=delta.mean(axis=1), feature_delta=feature_delta,
        hurt_positions=hurt.astype(np.int64),
        hurt_delta=np.take_along_axis(delta, hurt, axis=1),
    )


class AblationRunner:
    """The model's layers and decoder, ready to run the same text with units held."""

    def __init__(self, model: RNNModel, ids: np.ndarray, device: torch.device) -> None:
        self.layers = single_layer_modules(model, device)
        self.decoder = Decoder.of(model, device)
        self.ids = torch.tensor(ids, device=device)  # (n,), a copy: `ids` may be read-only
        self.widths = model.widths  # each layer's H
        self.batch_size = max(1, min(MAX_BATCH, BATCH_VALUES // (len(ids) * max(self.widths))))
        with torch.inference_mode():
            x = nn.functional.embedding(self.ids, model.encoder.weight.detach().to(device))
            self.inputs = [x]  # inputs[l]: (n, in) what layer l + 1 reads, intact
            for layer in self.layers[:-1]:
                self.inputs.append(layer(self.inputs[-1])[0])

    def log_probs(self, key: StateKey, units: np.ndarray, held_at: np.ndarray) -> np.ndarray:
        """(B, n - 1) log p(next) with copy b's `units[b]` of `key` held at `held_at[b]`; with
        no units, one intact copy."""
        layer, state = key
        copies = max(len(units), 1)
        held = torch.zeros(copies, self.widths[layer - 1], dtype=torch.bool)  # (B, H_l)
        values = torch.zeros(copies, self.widths[layer - 1])  # (B, H_l)
        rows = torch.arange(len(units))
        held[rows, torch.as_tensor(units)] = True
        values[rows, torch.as_tensor(units)] = torch.as_tensor(held_at)
        device = self.ids.device
        with torch.inference_mode():
            h = step_held(self.layers[layer - 1], self.inputs[layer - 1], state,
                          held.to(device), values.to(device))  # (n, B, H)
            for upper in self.layers[layer:]:
                h = upper(h)[0]  # (n, B, H): torch's own module, whole batch at once
            return np.stack([self.next_log_probs(h[:, b]) for b in range(copies)])

    def next_log_probs(self, h: torch.Tensor) -> np.ndarray:
        """log p of each next token, (n - 1,), from the top layer's h (n, H)."""
        next_ids = self.ids[1:]
        out = np.empty(len(next_ids), dtype=np.float64)
        for start in range(0, len(next_ids), self.decoder.rows):
            stop = min(start + self.decoder.rows, len(next_ids))
            log_p, _, _ = self.decoder.predict(h[start:stop], next_ids[start:stop], 1)
            out[start:stop] = log_p.double().cpu().numpy()
        return out


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the ablation of a small model on one torch thread. Its recurrent steps are small
    products of a few microseconds, and its decoder blocks are a few hundred rows, so a second
    thread costs more to wake than it saves: on the shared 2-core machine, 64 ablated copies of
    the demo model over 500 tokens took 2.7 s on two threads against 0.27 s on one. From
    SMALL_LAYER units the run's threads are kept: at 2,000 units a step's gate product is
    (33, 2000) @ (2000, 8000), and each copy's decoder 66 GFLOP over 500 tokens."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def step_held(layer: nn.RNNBase, inputs: torch.Tensor, state: str, held: torch.Tensor,
              values: torch.Tensor) -> torch.Tensor:
    """One layer's h over the text, (n, B, H), for B copies, each with its `held` units
    (B, H) set to `values` (B, H) after every step; `inputs` (n, in) is the same for all."""
    if isinstance(layer, nn.LSTM):
        return step_lstm_held(layer, inputs, state, held, values)
    if state != "h":
        raise ReportgenError(f"a {type(layer).__name__} layer has no cell state to ablate")
    # torch's own cell functions on the layer's weights: a cell module made here would hold
    # inference tensors that its forward then refuses
    cell = (torch.gru_cell if isinstance(layer, nn.GRU)
            else torch.rnn_relu_cell if layer.nonlinearity == "relu" else torch.rnn_tanh_cell)
    weights = [getattr(layer, f"{name}_l0") for name in ("weight_ih", "weight_hh", "bias_ih",
                                                          "bias_hh")]
    h = torch.zeros(held.shape, device=inputs.device)  # (B, H)
    out = torch.empty(len(inputs), *held.shape, device=inputs.device)  # (n, B, H)
    for t in range(len(inputs)):
        h = torch.where(held, values, cell(inputs[t].expand(len(h), -1), h, *weights))
        out[t] = h
    return out


def step_lstm_held(layer: nn.LSTM, inputs: torch.Tensor, state: str, held: torch.Tensor,
                   values: torch.Tensor) -> torch.Tensor:
    """`step_held` for an LSTM layer, with torch's gate order i, f, g, o. The input's share of
    the gates is the same for every copy, so it is one matrix product for the whole text."""
    from_input = torch.addmm(layer.bias_ih_l0 + layer.bias_hh_l0, inputs,
                             layer.weight_ih_l0.T)  # (n, 4H)
    w_hh_t = layer.weight_hh_l0.T.contiguous()  # (H, 4H)
    h = torch.zeros(held.shape, device=inputs.device)  # (B, H)
    c = torch.zeros_like(h)
    out = torch.empty(len(inputs), *held.shape, device=inputs.device)  # (n, B, H)
    for t in range(len(inputs)):
        i, f, g, o = torch.addmm(from_input[t], h, w_hh_t).chunk(4, dim=1)  # each (B, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if state == "c":
            c = torch.where(held, values, c)
        h = torch.sigmoid(o) * torch.tanh(c)
        if state == "h":
            h = torch.where(held, values, h)
        out[t] = h
    return out
