"""The step-by-step reference capture of an LSTM: one `nn.LSTMCell` step per token and layer.

It is test code, so it lives here and not in the package: test_capture.py checks the fast
capture against `stepwise_capture`, test_unit_effects.py builds its held-unit reference from the
same `lstm_cells`, and benchmarks/bench_report.py times `stepwise_capture` as the baseline of the
fast capture (it puts this folder on its import path to do so).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from reportgen.inputs.model import RNNModel

StateKey = tuple[int, str]  # (layer 1-based, "h" | "c"), as reportgen.capture.core names states


def lstm_cells(model: RNNModel) -> list[nn.LSTMCell]:
    """One `nn.LSTMCell` per layer of `model.rnn`, holding that layer's weights."""
    cells = []
    for layer in range(model.nlayers):
        cell = nn.LSTMCell(model.rnn.input_size if layer == 0 else model.nhid, model.nhid)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(model.rnn, f"{name}_l{layer}"))
        cells.append(cell)
    return cells


def stepwise_capture(model: RNNModel, ids: np.ndarray) -> tuple[dict[StateKey, np.ndarray],
                                                                 np.ndarray]:
    """The straightforward capture of an LSTM: one `LSTMCell` step per token and layer, and a
    log-softmax per token. About ten times slower than `capture`; it is what the tests check
    `capture` against and the baseline that `benchmarks/bench_report.py` times.

    Returns each layer's h and c, (T, H) float32 per state key, and log p(next), (T - 1,).
    """
    cells = lstm_cells(model)
    states: dict[StateKey, list[np.ndarray]] = {
        (layer, state): [] for layer in range(1, model.nlayers + 1) for state in ("h", "c")}
    hidden = [(torch.zeros(1, model.nhid), torch.zeros(1, model.nhid)) for _ in cells]
    log_prob_next = []
    with torch.no_grad():
        for t, token in enumerate(ids):
            x = model.encoder(torch.tensor([int(token)]))
            for layer, cell in enumerate(cells):
                hidden[layer] = cell(x, hidden[layer])
                x = hidden[layer][0]
                states[(layer + 1, "h")].append(hidden[layer][0][0].numpy())
                states[(layer + 1, "c")].append(hidden[layer][1][0].numpy())
            if t + 1 < len(ids):
                log_probs = torch.log_softmax(model.decoder(x), dim=1)
                log_prob_next.append(float(log_probs[0, int(ids[t + 1])]))
    return ({key: np.stack(values) for key, values in states.items()},
            np.array(log_prob_next, dtype=np.float32))


def stepped_verb_log_probs(model, items, words: list[str], unit: tuple[int, int] | None = None,
                           scale: float = 0.0) -> np.ndarray:
    """The agreement tests' independent computation: one `nn.LSTMCell` step per token and
    layer, from zero, over `<eos>` and each item's prefix, then a log-softmax; (N, 2) log
    p(correct), log p(wrong). With `unit` (layer 1-based, index), that unit's h is multiplied
    by `scale` after every step, before it is fed back or passed on."""
    index = {word: i for i, word in enumerate(words)}
    cells = lstm_cells(model)
    out = []
    with torch.no_grad():
        for item in items:
            hidden = [(torch.zeros(1, cell.hidden_size), torch.zeros(1, cell.hidden_size))
                      for cell in cells]
            for word in ("<eos>", *item.prefix):
                x = model.encoder(torch.tensor([index[word]]))
                for layer, cell in enumerate(cells):
                    h, c = cell(x, hidden[layer])
                    if unit is not None and unit[0] == layer + 1:
                        h = h.clone()
                        h[0, unit[1]] *= scale
                    hidden[layer] = (h, c)
                    x = h
            log_p = torch.log_softmax(model.decoder(x), dim=1)[0]
            out.append([float(log_p[index[item.correct]]), float(log_p[index[item.wrong]])])
    return np.array(out)
