"""Unit alignment and linear CKA, checked against independent computations: the Hungarian
algorithm on `np.corrcoef`'s matrix, CKA from its Gram-matrix (HSIC) form, and a planted twin:
a model's states with their units permuted and some negated must be matched exactly, r = ±1.

The states are a real capture: the tiny LSTM of conftest read over the tiny corpus's test split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from captures import make_capture
from scipy.optimize import linear_sum_assignment

from reportgen.analysis.alignment import UNMATCHED, align_models, align_units
from reportgen.analysis.bundle import ModelReport, ModelSummary
from reportgen.analysis.distributions import analyse_distributions
from reportgen.analysis.similarity import compare_representations, linear_cka
from reportgen.analysis.state_sample import (
    SAMPLE_POSITIONS,
    StateSample,
    sample_positions,
    sample_states,
)
from reportgen.capture.core import Capture, capture
from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.render.comparable import export, figures_of, read_comparable


@pytest.fixture(scope="module")
def real_capture(tiny_model: Path, tiny_corpus: Path) -> Capture:
    vocabulary = vocabulary_from_folder(tiny_corpus)
    text = tokenize(tiny_corpus / "test.txt", vocabulary)
    return capture(load_checkpoint(tiny_model).model, text.ids, text.tokens, vocabulary.words)


@pytest.fixture(scope="module")
def sample(real_capture: Capture) -> StateSample:
    return sample_states(real_capture, size=1500, seed=0)


def independent_match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(matched unit of b for each unit of a, r (Ha, Hb)) by np.corrcoef and scipy."""
    ha = a.shape[1]
    r = np.corrcoef(a.astype(np.float64).T, b.astype(np.float64).T)[:ha, ha:]  # (Ha, Hb)
    rows, columns = linear_sum_assignment(-np.abs(r))
    matched = np.full(ha, -1)
    matched[rows] = columns
    return matched, r


def unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, written out on the n x n Gram matrices with zeroed diagonals:
    (tr(K L) + 1'K1 1'L1 / ((n-1)(n-2)) - 2/(n-2) 1'K L1) / (n (n-3))."""
    n = k.shape[0]
    k, l_ = k.copy(), l_.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l_, 0.0)
    ones = np.ones(n)
    return float((np.sum(k * l_) + (ones @ k @ ones) * (ones @ l_ @ ones) / ((n - 1) * (n - 2))
                  - 2.0 / (n - 2) * (ones @ k @ l_ @ ones)) / (n * (n - 3)))


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased CKA from the raw (uncentred) linear Gram matrices, as Kornblith et al. (2019)
    define it: the unbiased HSIC needs no centring matrix."""
    k = x.astype(np.float64) @ x.astype(np.float64).T  # (n, n)
    l_ = y.astype(np.float64) @ y.astype(np.float64).T
    return unbiased_hsic(k, l_) / np.sqrt(unbiased_hsic(k, k) * unbiased_hsic(l_, l_))


def test_alignment_equals_the_hungarian_algorithm_on_np_corrcoef(sample: StateSample) -> None:
    for key_a, key_b in [((1, "h"), (2, "h")), ((1, "c"), (2, "c")), ((1, "h"), (1, "c"))]:
        a, b = sample.states[key_a], sample.states[key_b]
        alignment, _ = align_units(a, b)
        matched, r = independent_match(a, b)
        np.testing.assert_array_equal(alignment.matched, matched)
        np.testing.assert_allclose(alignment.matched_r, r[np.arange(len(matched)), matched],
                                   atol=1e-9)
        np.testing.assert_array_equal(alignment.best, np.abs(r).argmax(axis=1))
        assert alignment.share_above(0.5) == pytest.approx(
            np.mean(np.abs(r[np.arange(len(matched)), matched]) > 0.5))


def test_a_permuted_and_negated_twin_is_matched_exactly_with_r_one(sample: StateSample) -> None:
    rng = np.random.default_rng(5)
    twin_states = {}
    permutations = {}
    for key, values in sample.states.items():
        permutation = rng.permutation(values.shape[1])  # twin unit j is unit permutation[j]
        signs = np.where(rng.random(values.shape[1]) < 0.5, -1, 1).astype(np.float16)
        twin_states[key] = values[:, permutation] * signs
        permutations[key] = permutation
    twin = StateSample(sample.positions, twin_states)
    result = align_models({"model": sample, "twin": twin})
    similarity = compare_representations({"model": sample, "twin": twin})
    assert len(result.pairs) == len(sample.states)
    for pair in result.pairs:
        varying = np.flatnonzero(np.ptp(sample.states[pair.key], axis=0) > 0)
        expected = np.argsort(permutations[pair.key])  # model unit i is twin unit expected[i]
        np.testing.assert_array_equal(pair.a_to_b.matched[varying], expected[varying])
        np.testing.assert_allclose(np.abs(pair.a_to_b.matched_r[varying]), 1.0, atol=1e-9)
        np.testing.assert_array_equal(pair.b_to_a.matched[expected[varying]], varying)
    for item in similarity.across:
        assert item.cka == pytest.approx(1.0, abs=1e-9)


def test_cka_equals_its_gram_matrix_formula(sample: StateSample) -> None:
    keys = sample.keys
    for key_a in keys:
        for key_b in keys:
            x, y = sample.states[key_a][:600], sample.states[key_b][:600]
            assert linear_cka(x, y) == pytest.approx(gram_cka(x, y), rel=1e-9)
    result = compare_representations({"model": sample})
    assert len(result.within) == len(keys) * (len(keys) - 1) // 2
    for item in result.within:
        expected = gram_cka(sample.states[item.key_a], sample.states[item.key_b])
        assert item.cka == pytest.approx(expected, rel=1e-9)


def test_cka_is_one_under_rotation_and_scale_and_low_for_unrelated_states() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 12))
    rotation, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert linear_cka(x, 3.0 * x @ rotation + 7.0) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, rng.normal(size=(500, 12))) < 0.1
    assert np.isnan(linear_cka(np.ones((50, 3)), x[:50]))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_of_independent_wide_representations_has_no_floor() -> None:
    """The biased estimator gives two independent 650-unit representations over 4,000
    positions a CKA of about 0.14; the debiased one stays near 0, at any width."""
    rng = np.random.default_rng(1)
    for width in (650, 200):
        x, y = rng.normal(size=(4000, width)), rng.normal(size=(4000, width))
        assert abs(linear_cka(x, y)) < 0.02
        assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_each_pair_has_a_shuffled_baseline_near_zero(sample: StateSample) -> None:
    """The baseline is the same pair with one side's positions shuffled: the estimate with the
    correspondence gone, near 0, while the real pair lies well above it."""
    result = compare_representations({"model": sample})
    frame = result.frame()
    assert list(frame.columns[-2:]) == ["linear_cka", "linear_cka_shuffled"]
    order = np.random.default_rng(0).permutation(len(sample.positions))
    for item in result.within:
        x, y = sample.states[item.key_a], sample.states[item.key_b]
        assert item.shuffled == pytest.approx(linear_cka(x, y[order]), rel=1e-9, abs=1e-12)
        assert abs(item.shuffled) < 0.05 < item.cka


def test_constant_units_and_unequal_widths_are_matched_without_nan() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 6)).astype(np.float16)
    a[:, 2] = 0.5  # a dead unit
    b = a[:, [4, 0, 1, 3]]  # fewer units: two of a go unmatched
    alignment, r = align_units(a, b)
    assert np.all(np.isfinite(r))
    assert (r[2] == 0).all()
    assert (alignment.matched == UNMATCHED).sum() == 2
    assert alignment.matched[[4, 0, 1, 3]].tolist() == [0, 1, 2, 3]


def test_sampled_positions_are_seeded_sorted_and_the_same_for_every_model() -> None:
    first = sample_positions(50_000)
    assert len(first) == SAMPLE_POSITIONS and len(np.unique(first)) == SAMPLE_POSITIONS
    assert np.all(np.diff(first) > 0)
    np.testing.assert_array_equal(first, sample_positions(50_000))
    assert not np.array_equal(first, sample_positions(50_001))
    np.testing.assert_array_equal(sample_positions(300), np.arange(300))


def test_stored_comparable_data_reads_back_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    states = {(1, "h"): np.tanh(rng.normal(size=(5000, 8))).astype(np.float32),
              (1, "c"): rng.normal(size=(5000, 8)).astype(np.float32)}
    cap = make_capture(states, tokens=["a", "b"] * 2500)
    cap.log_prob_next = np.log(rng.uniform(0.1, 1, 5000)).astype(np.float32)
    summary = ModelSummary("m", {"nhid": 8}, 2, "model.pt", "reportgen", "0" * 64, "t.txt",
                           "a" * 64, 5000, 0, cap.perplexity(), False, {"dropout": 0.25})
    report = ModelReport(summary, cap, distributions=analyse_distributions(cap))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "report.json").write_text("{}")
    export(report, tmp_path / "data")
    stored = read_comparable(tmp_path, href="m/index.html")
    expected = figures_of(report, href="m/index.html")
    assert stored.figures.perplexity == expected.perplexity
    assert stored.figures.vocabulary_sha256 == expected.vocabulary_sha256
    for got, want in zip(stored.figures.states, expected.states):
        assert (got.key, got.mean_abs, got.n_near_zero) == (want.key, want.mean_abs,
                                                            want.n_near_zero)
        np.testing.assert_array_equal(got.kl_scores, want.kl_scores)
    positions = sample_positions(5000)
    np.testing.assert_array_equal(stored.sample.positions, positions)
    for key, values in states.items():
        assert stored.sample.states[key].dtype == np.float16
        np.testing.assert_array_equal(stored.sample.states[key],
                                      values[positions].astype(np.float16))
    payload = json.loads((tmp_path / "data" / "comparable" / "figures.json").read_text())
    payload["format"] = 0
    (tmp_path / "data" / "comparable" / "figures.json").write_text(json.dumps(payload))
    with pytest.raises(ReportgenError, match="render the report again"):
        read_comparable(tmp_path)
