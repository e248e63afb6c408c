"""The fast capture must give the states a step-by-step LSTMCell gives, to 1e-5."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from stepwise import stepwise_capture

from reportgen.capture.core import Capture, CaptureOptions, capture
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.inputs.model import RNNModel, resolve_device

capture_module = importlib.import_module("reportgen.capture.core")  # the package exports a `capture`


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tiny_corpus: Path):
    loaded = load_checkpoint(tiny_model)
    vocabulary = vocabulary_from_folder(tiny_corpus)
    text = tokenize(tiny_corpus / "test.txt", vocabulary, max_tokens=600)
    return loaded.model, text, vocabulary


def test_capture_matches_lstmcell_reference(trained) -> None:
    model, text, vocabulary = trained
    captured = capture(model, text.ids, text.tokens, vocabulary.words,
                       CaptureOptions(chunk_size=128, progress=False))
    states, log_prob_next = stepwise_capture(model, text.ids)
    assert set(captured.states) == set(states)
    for key, expected in states.items():
        np.testing.assert_allclose(captured.states[key], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(captured.log_prob_next[:-1], log_prob_next, rtol=1e-5, atol=1e-5)
    assert np.isnan(captured.log_prob_next[-1]) and (captured.top_ids[-1] == -1).all()


def test_saturated_cells_are_exact_where_atanh_would_fail() -> None:
    """Cells far beyond |c| = 8.7, where atanh(h / o) cannot recover c in float32."""
    torch.manual_seed(1)
    model = RNNModel("LSTM", 40, 8, 16, 2, 0.0).eval()
    with torch.no_grad():
        model.rnn.bias_hh_l0[16:32] += 6.0  # forget gates open: c accumulates
        model.rnn.bias_hh_l0[32:48] += 2.0
    ids = np.random.default_rng(0).integers(0, 40, 400)
    captured = capture(model, ids, [str(i) for i in ids], [str(i) for i in range(40)],
                       CaptureOptions(chunk_size=64, progress=False))
    states, _ = stepwise_capture(model, ids)
    assert np.abs(states[(1, "c")]).max() > 20
    np.testing.assert_allclose(captured.states[(1, "c")], states[(1, "c")], rtol=1e-5, atol=1e-5)


def test_chunking_does_not_change_the_result(trained) -> None:
    model, text, vocabulary = trained
    one = capture(model, text.ids, text.tokens, vocabulary.words, CaptureOptions(chunk_size=10_000, progress=False))
    many = capture(model, text.ids, text.tokens, vocabulary.words, CaptureOptions(chunk_size=37, progress=False))
    for key in one.states:
        np.testing.assert_allclose(one.states[key], many.states[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.log_prob_next, many.log_prob_next, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(one.top_ids, many.top_ids)


def test_top_predictions_and_perplexity_agree_with_the_model_forward(trained) -> None:
    model, text, vocabulary = trained
    captured = capture(model, text.ids, text.tokens, vocabulary.words, CaptureOptions(progress=False))
    with torch.no_grad():
        log_probs, _ = model(torch.as_tensor(text.ids).view(-1, 1), model.init_hidden(1))
    expected_top = log_probs.topk(5, dim=1).indices.numpy()
    np.testing.assert_array_equal(captured.top_ids[:-1], expected_top[:-1])
    nll = -log_probs[torch.arange(len(text.ids) - 1), torch.as_tensor(text.ids[1:])].double().mean()
    assert captured.perplexity() == pytest.approx(float(torch.exp(nll)), rel=1e-5)


@pytest.mark.parametrize("rnn_type", ["GRU", "RNN_TANH", "RNN_RELU"])
def test_gru_and_plain_rnn_give_h_only_matching_the_module(rnn_type: str) -> None:
    torch.manual_seed(2)
    model = RNNModel(rnn_type, 30, 8, 12, 2, 0.0).eval()
    ids = np.random.default_rng(1).integers(0, 30, 200)
    captured: Capture = capture(model, ids, [str(i) for i in ids], [str(i) for i in range(30)],
                                CaptureOptions(chunk_size=50, progress=False))
    assert captured.keys == [(1, "h"), (2, "h")]
    with torch.no_grad():
        out, _ = model.rnn(model.encoder(torch.as_tensor(ids)).unsqueeze(1))
    np.testing.assert_allclose(captured.states[(2, "h")], out[:, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_float16_storage_halves_memory_and_stays_close(trained) -> None:
    model, text, vocabulary = trained
    full = capture(model, text.ids, text.tokens, vocabulary.words, CaptureOptions(progress=False))
    half = capture(model, text.ids, text.tokens, vocabulary.words,
                   CaptureOptions(dtype="float16", progress=False))
    assert half.states[(1, "h")].dtype == np.float16
    np.testing.assert_allclose(half.states[(1, "h")], full.states[(1, "h")], atol=1e-3)


def test_decoder_blocks_give_the_same_predictions(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """Logits held a few rows at a time, as for a large vocabulary, change nothing beyond
    float32 rounding: a 7-row matrix product sums in another order than a 100-row one, which
    moved log p by up to 2.9e-6 on the tiny model of the corpus with planted agreement."""
    model, text, vocabulary = trained
    options = CaptureOptions(chunk_size=100, progress=False)
    whole = capture(model, text.ids, text.tokens, vocabulary.words, options)
    monkeypatch.setattr(capture_module, "LOG_PROBS_PER_BLOCK", 7 * len(vocabulary))
    blocked = capture(model, text.ids, text.tokens, vocabulary.words, options)
    np.testing.assert_allclose(blocked.log_prob_next, whole.log_prob_next, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(blocked.top_ids, whole.top_ids)
    np.testing.assert_allclose(blocked.top_log_probs, whole.top_log_probs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("has_gpu, expected", [(False, "cpu"), (True, "cuda")])
def test_auto_device_is_the_gpu_when_torch_finds_one_else_the_cpu(
        monkeypatch: pytest.MonkeyPatch, has_gpu: bool, expected: str) -> None:
    """Both machines, whichever this one is: torch's answer is set, the device is stated."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
    assert resolve_device("auto") == torch.device(expected)


def test_capture_leaves_the_model_as_it_was_and_ignores_dropout() -> None:
    """A notebook's model keeps its mode and device, and a model in training mode with dropout
    still gives the deterministic capture of its eval mode."""
    torch.manual_seed(4)
    model = RNNModel("LSTM", 30, 8, 12, 2, 0.5)
    model.train()
    ids = np.random.default_rng(2).integers(0, 30, 120)
    tokens, words = [str(i) for i in ids], [str(i) for i in range(30)]
    first = capture(model, ids, tokens, words, CaptureOptions(progress=False))
    assert model.training
    assert all(parameter.device.type == "cpu" for parameter in model.parameters())
    second = capture(model.eval(), ids, tokens, words, CaptureOptions(progress=False))
    for key, values in first.states.items():
        np.testing.assert_array_equal(values, second.states[key])
    np.testing.assert_array_equal(first.log_prob_next, second.log_prob_next)
