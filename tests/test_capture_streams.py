"""Parallel streams with verified burn-in give the one-stream capture's states (DESIGN.md 3.1).

Each stream's burn-in is checked against the stream before it; a long-memory unit, built here by
pinning a forget gate near 1, must make the check double the burn-in, and where no burn-in is
long enough, fall back to one stream for that segment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stepwise import stepwise_capture

from reportgen.capture import streams
from reportgen.capture.cache import cached_capture
from reportgen.capture.core import Capture, CaptureOptions, capture
from reportgen.capture.streams import BOUNDARY_TOLERANCE, choose_streams
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.inputs.model import RNNModel
from reportgen.runs.report import stream_notes


def run(model: RNNModel, ids: np.ndarray, words: list[str], **options: int) -> Capture:
    return capture(model, ids, [words[i] for i in ids], words,
                   CaptureOptions(progress=False, **options))


def assert_same_capture(parallel: Capture, single: Capture) -> None:
    """States within the boundary tolerance, perplexity to 1e-6 relative."""
    assert set(parallel.states) == set(single.states)
    for key, values in single.states.items():
        np.testing.assert_allclose(parallel.states[key], values, rtol=0, atol=BOUNDARY_TOLERANCE)
    assert parallel.perplexity() == pytest.approx(single.perplexity(), rel=1e-6, abs=0)
    np.testing.assert_allclose(parallel.log_prob_next, single.log_prob_next, atol=1e-4)
    assert np.isnan(parallel.log_prob_next[-1]) and (parallel.top_ids[-1] == -1).all()


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tiny_corpus: Path):
    loaded = load_checkpoint(tiny_model)
    vocabulary = vocabulary_from_folder(tiny_corpus)
    text = tokenize(tiny_corpus / "test.txt", vocabulary, max_tokens=1500)
    return loaded.model, text.ids, vocabulary.words


@pytest.mark.parametrize("streams, burn_in", [(2, 16), (5, 32), (16, 8)])
def test_parallel_streams_give_the_one_stream_states(trained, streams: int,
                                                     burn_in: int) -> None:
    model, ids, words = trained
    single = run(model, ids, words, streams=1)
    parallel = run(model, ids, words, streams=streams, burn_in=burn_in, chunk_size=256)
    record = parallel.streams
    assert record.streams == streams and record.burn_in == burn_in
    assert 0 <= record.boundary_difference <= BOUNDARY_TOLERANCE
    assert_same_capture(parallel, single)
    assert single.streams.streams == 1 and single.streams.boundary_difference == 0


def test_one_stream_is_the_lstmcell_reference(trained) -> None:
    """The hand-stepped layer records c as it runs, and it is the LSTMCell's c to 1e-5."""
    model, ids, words = trained
    single = run(model, ids[:500], words, streams=1, chunk_size=64)
    states, log_prob_next = stepwise_capture(model, ids[:500])
    for key, expected in states.items():
        np.testing.assert_allclose(single.states[key], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(single.log_prob_next[:-1], log_prob_next, rtol=1e-5, atol=1e-5)


def pinned_model(forget_bias: float) -> RNNModel:
    """A 2-layer LSTM whose first unit in layer 1 has a constant forget gate sigmoid(bias): its
    cell sums its inputs with that decay, so it remembers its start for about 1 / (1 - f)
    tokens, and a burn-in must be that long before two streams agree."""
    torch.manual_seed(3)
    model = RNNModel("LSTM", 50, 10, 16, 2, 0.0).eval()
    forget = 16  # torch's gate order i, f, g, o: row 16 is unit 0's forget gate
    with torch.no_grad():
        model.rnn.weight_ih_l0[forget].zero_()
        model.rnn.weight_hh_l0[forget].zero_()
        model.rnn.bias_ih_l0[forget] = forget_bias
        model.rnn.bias_hh_l0[forget] = 0.0
    return model


def test_a_long_memory_unit_doubles_the_burn_in_until_the_boundaries_agree() -> None:
    model = pinned_model(np.log(0.97 / 0.03))  # f = 0.97: 300 tokens to forget to 1e-4
    words = [str(i) for i in range(50)]
    ids = np.random.default_rng(4).integers(0, 50, 4000)
    single = run(model, ids, words, streams=1)
    parallel = run(model, ids, words, streams=4, burn_in=16)
    record = parallel.streams
    assert record.doubled >= 1 and record.largest_burn_in >= 256 and record.fallbacks == 0
    assert record.boundary_difference <= BOUNDARY_TOLERANCE
    assert_same_capture(parallel, single)


def test_a_unit_that_never_forgets_falls_back_to_one_stream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """f = sigmoid(30) is 1 in float32: no burn-in ever agrees, so every boundary past the first
    stream falls back, and the capture is still the one-stream capture."""
    monkeypatch.setattr(streams, "MAX_BURN_IN", 64)
    model = pinned_model(30.0)
    words = [str(i) for i in range(50)]
    ids = np.random.default_rng(5).integers(0, 50, 1200)
    single = run(model, ids, words, streams=1)
    parallel = run(model, ids, words, streams=3, burn_in=16)
    record = parallel.streams
    assert record.fallbacks == 2 and record.largest_burn_in == 64
    assert record.boundary_difference <= BOUNDARY_TOLERANCE
    assert_same_capture(parallel, single)


@pytest.mark.slow
def test_parallel_streams_on_the_demo_model(demo_model: tuple[Path, Path]) -> None:
    corpus, checkpoint = demo_model
    vocabulary = vocabulary_from_folder(corpus)
    text = tokenize(corpus / "test.txt", vocabulary)
    model = load_checkpoint(checkpoint).model
    single = run(model, text.ids, vocabulary.words, streams=1)
    parallel = run(model, text.ids, vocabulary.words, streams=8, burn_in=64)
    assert parallel.streams.streams == 8
    assert_same_capture(parallel, single)


def test_streams_grow_with_the_width_and_shrink_with_the_text() -> None:
    assert choose_streams([650, 650], 245_569, 128) < choose_streams([2000, 2000], 245_569, 128)
    assert choose_streams([400, 1150, 400], 245_569, 128) == choose_streams([2000], 245_569, 128)
    assert choose_streams([650], 600, 128) == 1
    assert choose_streams([650], 20_000, 128) == 20_000 // (8 * 128)


def test_the_stream_record_reaches_the_cache_and_the_overview_note(trained,
                                                                   tmp_path: Path) -> None:
    model, ids, words = trained
    options = CaptureOptions(progress=False, streams=3, burn_in=16)
    tokens = [words[i] for i in ids]
    first = cached_capture(model, ids, tokens, words, options, "0" * 64, tmp_path)
    again = cached_capture(model, ids, tokens, words, options, "0" * 64, tmp_path)
    assert not first.reused and again.reused
    assert again.capture.streams == first.capture.streams
    assert again.capture.streams.streams == 3
    note, = stream_notes(again.capture)
    assert note.startswith("captured as 3 parallel streams, each starting 16 tokens early")
    assert f"{again.capture.streams.boundary_difference:.1e}" in note
    single = cached_capture(model, ids, tokens, words, CaptureOptions(progress=False, streams=1),
                            "0" * 64, tmp_path)
    assert not single.reused and stream_notes(single.capture) == ["captured as one stream"]
