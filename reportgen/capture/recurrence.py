"""The recurrence of every layer over B streams at once, each LSTM layer stepped by hand.

Stepping the layer here, rather than calling `nn.LSTM`, is what lets the capture keep every c_t
as it is computed: `nn.LSTM` returns the h of every step but only the last c, and recovering c
afterwards meant a second pass over the gates, as costly as the recurrence itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


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
    """Every layer of the model over B streams of tokens at once, one chunk of steps a call.

    `layers` are single-layer modules (`capture.single_layer_modules`), each with its own input
    and hidden size; an LSTM layer is stepped from its weights, any other runs whole.
    """

    def __init__(self, embedding: torch.Tensor, layers: list[nn.RNNBase]) -> None:
        self.embedding = embedding  # (V, E)
        self.device = embedding.device
        self.layers = layers
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
