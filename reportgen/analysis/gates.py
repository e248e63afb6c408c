"""Gate statistics of a gated recurrent model: how often each unit's gates saturate, and how
long its memory lasts (DESIGN.md 3.5; Karpathy et al. 2015).

The capture already holds every layer's h at every position, so each gate's pre-activation
W_ih x_t + W_hh h_{t-1} + b comes out of two batched matrix products over a chunk of positions,
without running the model again. x_t is the encoder's row of the token for layer 1 (the
encoder's dropout is off in eval mode) and the layer below's h_t above it; h_{-1} is zero, the
state the capture starts from.

An LSTM's gates are i, f and o (torch's rows i, f, g, o); a GRU's are r and z (rows r, z, n),
and its z plays the forget gate's part: h_t = (1 - z) n + z h_{t-1}. Plain RNNs have no gates.

Two memory time constants, in tokens, both the number of steps over which what a unit carries
shrinks by a factor e:
- `time_constant`, -1 / ln(mean f): with the gate held at its mean (Karpathy et al. 2015's
  reading of the mean gate);
- `product_time_constant`, -1 / mean(ln f): the decay the product of the actual gates implies,
  since f_1 f_2 ... f_n = exp(n mean(ln f)). By Jensen's inequality mean(ln f) <= ln(mean f),
  so it is never longer: a unit whose gate is mostly open but sometimes shut forgets at the
  shutting, which the first figure hides.
A gate whose every value is exactly 1 in float32 (a sigmoid saturates there from a
pre-activation of about 17) gives ln 1 = 0 and a time constant of +inf, never -inf: these are
the longest memories, and they are kept in every median, histogram and export.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from reportgen.capture.core import Capture, single_layer_modules

LEFT = 0.1  # a gate below this is left-saturated: closed
RIGHT = 0.9  # above this, right-saturated: open
CHUNK = 4096  # positions per matrix product: 4096 x 4 x 650 float32 is 43 MB

# The gates reported for each gated type: their name and their block of rows in torch's weights.
GATE_ROWS: dict[str, dict[str, int]] = {"LSTM": {"i": 0, "f": 1, "o": 3}, "GRU": {"r": 0, "z": 1}}
MEMORY_GATE = {"LSTM": "f", "GRU": "z"}  # the gate whose mean gives the time constant


@dataclass
class LayerWeights:
    """The rows of one layer's weights that make the reported gates, in GATE_ROWS order."""

    w_ih: np.ndarray  # (G * H, in) float32
    w_hh: np.ndarray  # (G * H, H) float32
    bias: np.ndarray  # (G * H,) float32, b_ih + b_hh


@dataclass
class GateWeights:
    """What the gate statistics need of a model, as plain arrays: no reference to the model."""

    rnn_type: str
    embedding: np.ndarray  # (V, E) float32, the encoder's weight
    layers: list[LayerWeights]

    @classmethod
    def of(cls, model: torch.nn.Module) -> GateWeights | None:
        """The gate rows of `model` (an `RNNModel`); None for a plain RNN, which has none."""
        if model.rnn_type not in GATE_ROWS:
            return None
        blocks = list(GATE_ROWS[model.rnn_type].values())

        def rows(tensor: torch.Tensor, hidden: int) -> np.ndarray:
            picked = torch.cat([tensor[b * hidden : (b + 1) * hidden] for b in blocks])
            return picked.detach().float().cpu().numpy()

        layers = []
        for rnn in single_layer_modules(model, torch.device("cpu")):  # each its own width
            hidden = rnn.hidden_size
            layers.append(LayerWeights(
                rows(rnn.weight_ih_l0, hidden), rows(rnn.weight_hh_l0, hidden),
                rows(rnn.bias_ih_l0, hidden) + rows(rnn.bias_hh_l0, hidden)))
        embedding = model.encoder.weight.detach().float().cpu().numpy()
        return cls(model.rnn_type, embedding, layers)


@dataclass
class LayerGates:
    """One layer's gate statistics, one column per unit."""

    layer: int  # 1-based
    gates: list[str]  # gate names, e.g. ["i", "f", "o"]
    left: np.ndarray  # (G, H) share of positions where the gate is below LEFT
    right: np.ndarray  # (G, H) share of positions where the gate is above RIGHT
    mean: np.ndarray  # (G, H) the gate's mean over the text
    time_constant: np.ndarray  # (H,) -1 / ln(mean of the memory gate), in tokens, +inf at 1
    product_time_constant: np.ndarray  # (H,) -1 / mean(ln of the memory gate), +inf at 1


@dataclass
class GateResult:
    rnn_type: str
    memory_gate: str  # "f" for an LSTM, "z" for a GRU
    n_tokens: int
    layers: list[LayerGates]

    def of_layer(self, layer: int) -> LayerGates:
        return self.layers[layer - 1]

    def to_frame(self) -> pd.DataFrame:
        """One row per layer, state and unit, as neurons.csv has them: the gates belong to
        the unit, so its h and c rows carry the same values."""
        states = ("h", "c") if self.rnn_type == "LSTM" else ("h",)
        frames = []
        for stats in self.layers:
            columns: dict[str, np.ndarray] = {}
            for index, gate in enumerate(stats.gates):
                columns[f"gate_{gate}_left"] = stats.left[index]
                columns[f"gate_{gate}_right"] = stats.right[index]
            columns["forget_time_constant"] = stats.time_constant  # +inf written as inf
            columns["forget_time_constant_product"] = stats.product_time_constant
            for state in states:
                frame = pd.DataFrame(columns)
                frame.insert(0, "neuron", np.arange(stats.left.shape[1]))
                frame.insert(0, "state", state)
                frame.insert(0, "layer", stats.layer)
                frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def layer_inputs(capture: Capture, weights: GateWeights, layer: int, start: int,
                 stop: int) -> np.ndarray:
    """x_t of positions start..stop-1 for `layer` (1-based): (S, in) float32."""
    if layer == 1:
        return weights.embedding[capture.token_ids[start:stop]]
    return np.array(capture.states[(layer - 1, "h")][start:stop], dtype=np.float32)


def previous_hidden(hs: np.ndarray, start: int, stop: int) -> np.ndarray:
    """h_{t-1} of positions start..stop-1, (S, H) float32; zero before the first token."""
    previous = np.array(hs[max(start - 1, 0) : stop - 1], dtype=np.float32)  # writable, for torch
    if start == 0:
        previous = np.concatenate([np.zeros((1, hs.shape[1]), np.float32), previous])
    return previous


def gate_values(weights: LayerWeights, inputs: np.ndarray, previous: np.ndarray) -> torch.Tensor:
    """sigmoid(W_ih x_t + W_hh h_{t-1} + b) of the reported gates: (S, G * H)."""
    pre = torch.addmm(torch.from_numpy(weights.bias), torch.from_numpy(inputs),
                      torch.from_numpy(weights.w_ih).T)
    return pre.addmm_(torch.from_numpy(previous), torch.from_numpy(weights.w_hh).T).sigmoid_()


def analyse_layer(capture: Capture, weights: GateWeights, layer: int, chunk: int) -> LayerGates:
    names = list(GATE_ROWS[weights.rnn_type])
    hs = capture.states[(layer, "h")]  # (T, H)
    n_tokens, hidden = hs.shape
    left = torch.zeros(len(names) * hidden, dtype=torch.float64)
    right = torch.zeros_like(left)
    total = torch.zeros_like(left)
    memory_rows = slice(names.index(MEMORY_GATE[weights.rnn_type]) * hidden,
                        (names.index(MEMORY_GATE[weights.rnn_type]) + 1) * hidden)
    total_log = torch.zeros(hidden, dtype=torch.float64)  # sum of ln f of the memory gate
    for start in range(0, n_tokens, chunk):
        stop = min(start + chunk, n_tokens)
        gates = gate_values(weights.layers[layer - 1],
                            layer_inputs(capture, weights, layer, start, stop),
                            previous_hidden(hs, start, stop))  # (S, G * H)
        left += (gates < LEFT).sum(dim=0)
        right += (gates > RIGHT).sum(dim=0)
        total += gates.sum(dim=0, dtype=torch.float64)
        total_log += gates[:, memory_rows].double().log_().sum(dim=0)
    shape = (len(names), hidden)
    mean = (total / n_tokens).numpy().reshape(shape)
    memory = mean[names.index(MEMORY_GATE[weights.rnn_type])]  # (H,)
    with np.errstate(divide="ignore"):
        log_of_mean = np.log(memory)  # (H,) <= 0
    return LayerGates(layer, names, (left / n_tokens).numpy().reshape(shape),
                      (right / n_tokens).numpy().reshape(shape), mean,
                      time_constants(log_of_mean), time_constants((total_log / n_tokens).numpy()))


def time_constants(log_gate: np.ndarray) -> np.ndarray:
    """(H,) -1 / x of a ln(mean f) or mean(ln f), which are <= 0: +inf where x is 0 (a gate
    of exactly 1), 0 where x is -inf (a gate of exactly 0)."""
    result = np.full(log_gate.shape, np.inf)
    np.divide(-1.0, log_gate, out=result, where=log_gate < 0)
    return result


def analyse_gates(capture: Capture, weights: GateWeights, chunk: int = CHUNK) -> GateResult:
    """Saturation shares and time constants of every unit of every layer."""
    with torch.inference_mode():
        layers = [analyse_layer(capture, weights, layer, chunk)
                  for layer in range(1, len(weights.layers) + 1)]
    return GateResult(weights.rnn_type, MEMORY_GATE[weights.rnn_type], capture.n_tokens, layers)
