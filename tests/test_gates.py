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
from reportgen.capture.core import CaptureOptions, capture
from reportgen.inputs.model import RNNModel
from reportgen.render.pages.gates import BINS_PER_DECADE, time_constant_records
from reportgen.render.site import make_environment

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
        product = np.log(gates["f" if rnn_type == "LSTM" else "z"]).mean(axis=0)  # mean(ln f)
        np.testing.assert_allclose(stats.product_time_constant, -1 / product, rtol=1e-3)
        assert (stats.product_time_constant <= stats.time_constant * (1 + 1e-9)).all()  # Jensen
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
                                       "forget_time_constant", "forget_time_constant_product"]


def test_a_forget_gate_of_exactly_one_keeps_its_infinite_time_constant(tmp_path) -> None:
    """Unit 0 of layer 1 gets a forget-gate bias of 100: sigmoid is exactly 1.0 in float32 at
    every position, so both time constants are +inf, never -inf, and the unit stays in the
    export, the median and the histogram."""
    model = sharpened_model("LSTM")
    with torch.no_grad():
        model.rnn.bias_ih_l0[12 + 0] = 100.0  # rows i, f, g, o of 12 units each: f of unit 0
    ids = np.random.default_rng(1).integers(0, 30, N_TOKENS)
    words = [f"w{i}" for i in range(30)]
    captured = capture(model, ids, [words[i] for i in ids], words, CaptureOptions(progress=False))
    result = analyse_gates(captured, GateWeights.of(model))
    layer = result.of_layer(1)
    assert layer.mean[layer.gates.index("f"), 0] == 1.0
    assert layer.time_constant[0] == np.inf and layer.product_time_constant[0] == np.inf
    assert np.isfinite(layer.time_constant[1:]).all()
    path = tmp_path / "gates.csv"
    result.to_frame().to_csv(path, index=False)
    assert path.read_text().splitlines()[1].split(",")[-2:] == ["inf", "inf"]
    import pandas as pd
    back = pd.read_csv(path)
    assert back.loc[0, "forget_time_constant"] == np.inf

    records = time_constant_records(layer.time_constant)
    finite = layer.time_constant[1:]
    low = np.floor(np.log10(finite.min()) * BINS_PER_DECADE) / BINS_PER_DECADE
    high = np.ceil(np.log10(finite.max()) * BINS_PER_DECADE) / BINS_PER_DECADE
    edges = 10 ** np.linspace(low, high, round((high - low) * BINS_PER_DECADE) + 1)
    expected, _ = np.histogram(np.append(finite, finite.max()), bins=edges)  # inf in the last bin
    assert [r["count"] for r in records] == [int(n) for n in expected if n]
    assert sum(r["count"] for r in records) == 12
    assert records[-1]["last"] == "∞" and records[-1]["end"] == pytest.approx(edges[-1])
    template = make_environment().from_string(
        '{% from "macros.html" import number %}{{ number(x, 1) }}|{{ number(y, 1) }}')
    assert template.render(x=float(layer.time_constant[0]), y=-np.inf) == "∞|−∞"


def test_gates_page_median_counts_the_infinite_units() -> None:
    from reportgen.analysis.bundle import ModelReport
    from reportgen.analysis.distributions import analyse_distributions
    from reportgen.analysis.paged_units import decide_paged_units
    from reportgen.render.pages import SiteOptions
    from reportgen.render.pages.gates import layer_summary

    model = sharpened_model("LSTM")
    with torch.no_grad():
        model.rnn.bias_ih_l0[12:15] = 100.0  # three units' forget gates exactly 1
    ids = np.random.default_rng(2).integers(0, 30, N_TOKENS)
    words = [f"w{i}" for i in range(30)]
    captured = capture(model, ids, [words[i] for i in ids], words, CaptureOptions(progress=False))
    gates = analyse_gates(captured, GateWeights.of(model))
    report = ModelReport(None, captured, distributions=analyse_distributions(captured), gates=gates)
    report.paged = decide_paged_units(report.distributions, None, SiteOptions().top_neurons)
    layer = gates.of_layer(1)
    summary = layer_summary(report, layer)
    assert summary.infinite == 3
    assert summary.median_time_constant == np.median(layer.time_constant)
    assert summary.median_time_constant > np.median(layer.time_constant[3:])  # the old median
    assert summary.median_product_time_constant == np.median(layer.product_time_constant)
    assert time_constant_records(np.array([np.inf, np.inf])) == [
        {"start": pytest.approx(10 ** 0.9), "end": 10.0, "count": 2, "last": "∞"}]
