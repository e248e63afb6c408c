"""Gate statistics, recomputed from the capture, against gates stepped out of the model by hand.

The reference runs the model one token at a time from its own weights, computing every gate,
and checks its h against `nn.LSTM`/`nn.GRU`; the analysis never sees those gates, only the
capture's h sequences, so a wrong shift of h, a wrong input or a wrong row block shows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reportgen.analysis.gates import LEFT, RIGHT, GateWeights, analyse_gates
from reportgen.capture import CaptureOptions, capture
from reportgen.model import RNNModel

N_TOKENS = 300


def sharpened_model(rnn_type: str) -> RNNModel:
    """A small random model whose weights are scaled up so that gates often saturate."""
    torch.manual_seed(5)
    model = RNNModel(rnn_type, 30, 8, 12, 2, 0.0).eval()
    with torch.no_grad():
        for name, parameter in model.rnn.named_parameters():
            parameter.mul_(4.0)
        model.encoder.weight.mul_(10.0)
    return model


def stepped_gates(model: RNNModel, ids: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Each layer's gates, (T, H) per gate name, from one hand-made step per token."""
    rnn, hidden = model.rnn, model.nhid
    names = {"LSTM": "ifgo", "GRU": "rzn"}[model.rnn_type]
    h = [torch.zeros(hidden, dtype=torch.float64) for _ in range(model.nlayers)]
    c = [torch.zeros(hidden, dtype=torch.float64) for _ in range(model.nlayers)]
    gates: list[dict[str, list[np.ndarray]]] = [{n: [] for n in names} for _ in range(model.nlayers)]
    top = []
    with torch.no_grad():
        for token in ids:
            x = model.encoder.weight[int(token)].double()
            for k in range(model.nlayers):
                w_ih, w_hh = (getattr(rnn, f"weight_{w}_l{k}").double() for w in ("ih", "hh"))
                b_ih, b_hh = (getattr(rnn, f"bias_{w}_l{k}").double() for w in ("ih", "hh"))
                gi, gh = w_ih @ x + b_ih, w_hh @ h[k] + b_hh
                if model.rnn_type == "LSTM":
                    i, f, g, o = (gi + gh).chunk(4)
                    i, f, o, g = i.sigmoid(), f.sigmoid(), o.sigmoid(), g.tanh()
                    c[k] = f * c[k] + i * g
                    h[k] = o * c[k].tanh()
                    step = {"i": i, "f": f, "g": g, "o": o}
                else:
                    (ri, zi, ni), (rh, zh, nh) = gi.chunk(3), gh.chunk(3)
                    r, z = (ri + rh).sigmoid(), (zi + zh).sigmoid()
                    n = (ni + r * nh).tanh()
                    h[k] = (1 - z) * n + z * h[k]
                    step = {"r": r, "z": z, "n": n}
                for name, value in step.items():
                    gates[k][name].append(value.numpy())
                x = h[k]
            top.append(h[-1].numpy())
        out, _ = rnn(model.encoder(torch.as_tensor(ids)).unsqueeze(1))
    np.testing.assert_allclose(np.stack(top), out[:, 0].numpy(), atol=1e-4)  # the reference is right
    return [{name: np.stack(values) for name, values in layer.items()} for layer in gates]


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
def test_gate_statistics_match_stepped_gates(rnn_type: str) -> None:
    model = sharpened_model(rnn_type)
    ids = np.random.default_rng(0).integers(0, 30, N_TOKENS)
    words = [f"w{i}" for i in range(30)]
    captured = capture(model, ids, [words[i] for i in ids], words,
                       CaptureOptions(chunk_size=37, progress=False))
    weights = GateWeights.of(model)
    assert weights is not None
    result = analyse_gates(captured, weights, chunk=23)  # chunk edges the capture's do not share
    reference = stepped_gates(model, ids)
    tolerance = 1.5 / N_TOKENS  # a value within float error of 0.1 or 0.9 may count either way
    for stats, gates in zip(result.layers, reference):
        for index, name in enumerate(stats.gates):
            values = gates[name]  # (T, H)
            np.testing.assert_allclose(stats.mean[index], values.mean(axis=0), rtol=1e-4)
            np.testing.assert_allclose(stats.left[index], (values < LEFT).mean(axis=0),
                                       atol=tolerance)
            np.testing.assert_allclose(stats.right[index], (values > RIGHT).mean(axis=0),
                                       atol=tolerance)
        memory = gates["f" if rnn_type == "LSTM" else "z"].mean(axis=0)  # (H,)
        np.testing.assert_allclose(stats.time_constant, -1 / np.log(memory), rtol=1e-3)
    saturated = np.concatenate([s.left.ravel() for s in result.layers])
    assert saturated.max() > 0.2  # the sharpened weights do saturate: the test sees the counts


def test_plain_rnn_has_no_gates() -> None:
    assert GateWeights.of(RNNModel("RNN_TANH", 30, 8, 12, 2, 0.0)) is None


def test_gate_columns_repeat_for_both_states_of_a_unit() -> None:
    model = sharpened_model("LSTM")
    ids = np.arange(60) % 30
    words = [f"w{i}" for i in range(30)]
    captured = capture(model, ids, [words[i] for i in ids], words, CaptureOptions(progress=False))
    frame = analyse_gates(captured, GateWeights.of(model)).to_frame()
    assert len(frame) == 2 * 2 * 12
    h_rows = frame[frame.state == "h"].drop(columns="state").reset_index(drop=True)
    c_rows = frame[frame.state == "c"].drop(columns="state").reset_index(drop=True)
    assert h_rows.equals(c_rows)
    assert list(frame.columns[3:]) == ["gate_i_left", "gate_i_right", "gate_f_left",
                                       "gate_f_right", "gate_o_left", "gate_o_right",
                                       "forget_time_constant"]
