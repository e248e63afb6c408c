"""What a unit does to the prediction: output effects and mean-ablation, on real small models.

Each figure is checked against an independent computation: torch's own `nn.LSTM`, a naive
`nn.LSTMCell` loop that holds one unit, plain sorting of the decoder weights, and a loop over
positions for the direct logit contribution.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from stepwise import lstm_cells

from reportgen.analysis.ablation import (
    AblationOptions,
    AblationRunner,
    ablate,
    ablation_units,
    step_held,
)
from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.output_effects import direct_contributions, output_effects
from reportgen.capture.core import Capture, capture
from reportgen.charts import ablation_feature_chart, output_weights_chart
from reportgen.cli.main import main
from reportgen.csv_safety import neutralise_cell
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import load_vocabulary, tokenize
from reportgen.inputs.features import token_features
from reportgen.inputs.model import RNNModel

TOKENS = 400  # ablation budget of the fast tests


@pytest.fixture(scope="module")
def tiny(tiny_model: Path, tiny_corpus: Path) -> tuple[RNNModel, Capture]:
    model = load_checkpoint(tiny_model).model
    vocabulary = load_vocabulary(tiny_corpus)
    text = tokenize(tiny_corpus / "test.txt", vocabulary)
    return model, capture(model, text.ids, text.tokens, vocabulary.words)


def means_of(captured: Capture) -> dict:
    return {key: values.astype(np.float64).mean(axis=0) for key, values in captured.states.items()}


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
def test_the_held_step_with_nothing_held_is_torchs_own_layer(kind: type) -> None:
    torch.manual_seed(0)
    layer = kind(5, 7, 1)
    inputs = torch.randn(30, 5)  # (n, in)
    held = torch.zeros(3, 7, dtype=torch.bool)  # three copies, nothing held
    with torch.no_grad():
        expected = layer(inputs.unsqueeze(1))[0][:, 0]  # (n, H)
        got = step_held(layer, inputs, "h", held, torch.zeros(3, 7))  # (n, 3, H)
    for copy in range(3):
        torch.testing.assert_close(got[:, copy], expected, atol=1e-6, rtol=1e-5)


def test_nothing_held_reproduces_the_captures_log_probabilities(tiny) -> None:
    model, captured = tiny
    runner = AblationRunner(model, captured.token_ids[:TOKENS], torch.device("cpu"))
    intact = runner.log_probs((1, "h"), np.zeros(0, dtype=np.int64), np.zeros(0, np.float32))
    np.testing.assert_allclose(intact[0], captured.log_prob_next[: TOKENS - 1], atol=1e-4)


def naive_held_log_probs(model: RNNModel, ids: np.ndarray, key: tuple[int, str], unit: int,
                         value: float) -> np.ndarray:
    """One token and one layer at a time, with `nn.LSTMCell`'s weights: (n - 1,) log p(next)
    with `unit` of `key` held at `value` after every step (for c, before h reads it)."""
    cells = lstm_cells(model)
    hidden = [(torch.zeros(1, model.nhid), torch.zeros(1, model.nhid)) for _ in cells]
    out = []
    with torch.no_grad():
        for t in range(len(ids) - 1):
            x = model.encoder(torch.tensor([int(ids[t])]))
            for layer, cell in enumerate(cells):
                h, c = cell(x, hidden[layer])
                if (layer + 1, "c") == key:
                    gates = x @ cell.weight_ih.T + hidden[layer][0] @ cell.weight_hh.T
                    o = torch.sigmoid(gates + cell.bias_ih + cell.bias_hh)[:, 3 * model.nhid:]
                    c = c.clone()
                    c[0, unit] = value
                    h = o * torch.tanh(c)
                if (layer + 1, "h") == key:
                    h = h.clone()
                    h[0, unit] = value
                hidden[layer] = (h, c)
                x = h
            out.append(float(torch.log_softmax(model.decoder(x), dim=1)[0, int(ids[t + 1])]))
    return np.array(out)


@pytest.mark.parametrize("key", [(1, "h"), (1, "c"), (2, "h"), (2, "c")])
def test_the_batched_ablation_is_a_naive_one_unit_at_a_time_loop(tiny, key) -> None:
    model, captured = tiny
    ids = captured.token_ids[:120]
    means = means_of(captured)
    units = [0, 5, 11]
    result = ablate(model, ids, {key: units}, means, token_features(captured.tokens[:120]),
                    AblationOptions(tokens=120), "cpu")
    intact = captured.log_prob_next[:119].astype(np.float64)
    for row, unit in enumerate(units):
        naive = intact - naive_held_log_probs(model, ids, key, unit, float(means[key][unit]))
        assert result.states[key].delta_loss[row] == pytest.approx(naive.mean(), abs=1e-5)
        worst = int(np.argmax(naive))
        assert result.states[key].hurt_positions[row, 0] == worst
        assert result.states[key].hurt_delta[row, 0] == pytest.approx(naive[worst], abs=1e-4)


def test_feature_deltas_are_means_over_each_features_positions(tiny) -> None:
    model, captured = tiny
    features = token_features(captured.tokens)
    result = ablate(model, captured.token_ids, {(2, "h"): [3]}, means_of(captured), features,
                    AblationOptions(tokens=TOKENS), "cpu")
    runner = AblationRunner(model, captured.token_ids[:TOKENS], torch.device("cpu"))
    intact = runner.log_probs((1, "h"), np.zeros(0, np.int64), np.zeros(0, np.float32))[0]
    held = runner.log_probs((2, "h"), np.array([3]),
                            np.array([means_of(captured)[(2, "h")][3]], np.float32))[0]
    delta = intact - held  # (n - 1,)
    for index, name in enumerate(result.features):
        flags = features.values[name][: TOKENS - 1]
        expected = delta[flags].mean() if flags.any() else np.nan
        np.testing.assert_allclose(result.states[(2, "h")].feature_delta[0, index], expected,
                                   atol=1e-9, equal_nan=True)


def test_an_unused_unit_changes_nothing_and_a_used_one_does(tiny) -> None:
    model, captured = tiny
    unused = RNNModel("LSTM", model.ntoken, model.encoder.embedding_dim, model.nhid, 2, 0.0)
    unused.load_state_dict(model.state_dict())
    unused.eval()
    with torch.no_grad():
        unused.decoder.weight[:, 7] = 0.0  # top-layer h unit 7 reaches nothing
        unused.rnn.weight_hh_l1[:, 7] = 0.0
    fresh = capture(unused, captured.token_ids, captured.tokens, captured.vocabulary)
    result = ablate(unused, fresh.token_ids, {(2, "h"): [7, 8]}, means_of(fresh),
                    token_features(fresh.tokens), AblationOptions(tokens=TOKENS), "cpu")
    deltas = result.states[(2, "h")].delta_loss
    assert abs(deltas[0]) < 1e-6
    assert abs(deltas[1]) > 100 * max(abs(deltas[0]), 1e-7)


def test_every_unit_under_ablate_all(tiny) -> None:
    model, _ = tiny
    paged = {(1, "h"): [3, 1], (2, "c"): [0]}
    assert ablation_units(model, paged, False) == {(1, "h"): [1, 3], (2, "c"): [0]}
    assert ablation_units(model, paged, True) == {key: list(range(model.nhid)) for key in paged}


def test_output_effects_are_the_decoder_columns_extremes(tiny) -> None:
    model, captured = tiny
    effects = output_effects(model, [4, 2])
    weight = model.decoder.weight.detach().numpy()  # (V, H)
    for unit in range(model.nhid):
        column = weight[:, unit]
        assert list(effects.promoted_weights[unit]) == sorted(column, reverse=True)[:10]
        assert list(effects.suppressed_weights[unit]) == sorted(column)[:10]
        assert (column[effects.promoted_ids[unit]] == effects.promoted_weights[unit]).all()
    assert effects.column(3) is None
    np.testing.assert_array_equal(effects.column(2), weight[:, 2])

    values = captured.states[(2, "h")][:, 2]  # (T,)
    ids = captured.token_ids
    positions = np.array([0, 17, len(ids) - 1])
    got = direct_contributions(values, weight[:, 2], ids, positions)
    naive = [values[t] * weight[ids[t + 1], 2] if t + 1 < len(ids) else np.nan for t in positions]
    np.testing.assert_allclose(got, naive, equal_nan=True)


def test_the_effect_charts_are_valid_vega_lite() -> None:
    words = output_weights_chart([{"word": "<b>", "weight": 0.5}, {"word": "x", "weight": -1.0}],
                                 "t").to_dict()
    assert words["data"]["values"][0]["word"] == "<b>"
    deltas = ablation_feature_chart([{"feature": "all positions", "delta": 0.1, "positions": 9},
                                     {"feature": "in_quotes", "delta": None, "positions": 0}],
                                    "t").to_dict()
    assert [r["feature"] for r in deltas["data"]["values"]] == ["all positions", "in_quotes"]


def test_unit_pages_and_neurons_csv_carry_the_effects(tiny_model: Path, tiny_corpus: Path,
                                                      tmp_path: Path, tiny) -> None:
    model, captured = tiny
    out = tmp_path / "site"
    assert main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                 "--quiet", "--no-clusters", "--no-images", "--top-neurons", "2",
                 "--ablation-tokens", str(TOKENS), "--threads", "1"]) == 0
    frame = pd.read_csv(out / "data" / "neurons.csv", keep_default_na=False, na_values=[""])
    ablated = frame[frame["ablation_delta_loss"].notna()]
    pages = {path.stem for path in (out / "neuron").glob("*.html")}
    assert {f"L{r.layer}-{r.state}-{r.neuron:04d}" for r in ablated.itertuples()} == pages
    row = ablated[(ablated["layer"] == 2) & (ablated["state"] == "h")].iloc[0]
    unit = int(row["neuron"])
    expected = ablate(model, captured.token_ids, {(2, "h"): [unit]}, means_of(captured),
                      token_features(captured.tokens), AblationOptions(tokens=TOKENS), "cpu")
    assert row["ablation_delta_loss"] == pytest.approx(expected.states[(2, "h")].delta_loss[0],
                                                       abs=1e-5)
    top_word = row["output_promotes"].split(" ")[0]
    best = int(np.argmax(model.decoder.weight.detach().numpy()[:, unit]))
    assert top_word.rsplit(":", 1)[0] == neutralise_cell(captured.vocabulary[best])
    assert frame[frame["layer"] == 1]["output_promotes"].isna().all()
    page = (out / "neuron" / f"L2-h-{unit:04d}.html").read_text(encoding="utf-8")
    assert f"over the first {TOKENS} tokens" in page and "logit contribution" in page
    lower = next(iter(sorted((out / "neuron").glob("L1-c-*.html")))).read_text(encoding="utf-8")
    assert "no direct effect on the logits" in lower
    assert re.search(r"changes the loss by <strong>[+-]\d", lower)


def test_a_bad_ablation_budget_is_one_line(tiny_model: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(tiny_model), "--out", str(tmp_path / "x"), "--ablation-tokens", "1"])
    assert exit_.value.code != 0
    assert "--ablation-tokens: must be 0 (off) or at least 2" in capsys.readouterr().err


@pytest.mark.slow
def test_holding_the_planted_quote_unit_hurts_inside_quotes(demo_model, demo_capture) -> None:
    """The demo model's strongest in_quotes unit, held at its mean, raises the loss on the
    positions inside quotes more than the median unit of its layer and state does."""
    _, checkpoint = demo_model
    model = load_checkpoint(checkpoint).model
    features = token_features(demo_capture.tokens)
    concepts = analyse_concepts(demo_capture, features)
    q = features.names.index("in_quotes")
    key, unit = max(((key, int(n)) for key, state in concepts.states.items()
                     for n in range(state.auroc.shape[0])),
                    key=lambda item: abs(concepts.states[item[0]].auroc[item[1], q] - 0.5))
    units = list(range(model.nhid))
    result = ablate(model, demo_capture.token_ids, {key: units}, means_of(demo_capture),
                    features, AblationOptions(tokens=4000), "cpu")
    inside = result.states[key].feature_delta[:, q]  # (H,)
    assert inside[unit] > np.median(inside)
    assert inside[unit] > 0
