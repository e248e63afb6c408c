"""Distributions: counts against np.histogram, overflow slots, streaming, smoothed KL and JS,
near-zero rule, ranking and its stability."""

import math

import numpy as np
import pytest
from captures import make_capture
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, spearmanr

from reportgen.analysis.distributions import NEURON_COLUMNS, analyse_distributions, analyse_state
from reportgen.analysis.divergences import Divergences, divergences, rank_neurons, ranking_stability
from reportgen.analysis.histograms import bin_edges, histogram_counts, observed_cell_interval
from reportgen.errors import ReportgenError


def values_on_and_near_edges(half_width, shape, dtype, seed=0):
    """Random values over a wider range, mixed with every edge, its neighbours and ±half_width."""
    rng = np.random.default_rng(seed)
    edges = bin_edges(-half_width, half_width)
    pool = np.concatenate([
        edges,
        np.nextafter(edges, np.float32(np.inf)),
        np.nextafter(edges, np.float32(-np.inf)),
        rng.uniform(-1.2 * half_width, 1.2 * half_width, 2000).astype(np.float32),
    ])
    return rng.choice(pool, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("half_width", [1.0, 2.35, 50.0])
def test_counts_equal_np_histogram_of_each_neuron(dtype, half_width):
    values = values_on_and_near_edges(half_width, (3000, 6), dtype)
    edges = bin_edges(-half_width, half_width)
    n_bins = round(2 * half_width / 0.01)
    counts, below, above = histogram_counts(values, edges, chunk_rows=1000)
    assert counts.shape == (6, n_bins)
    for neuron in range(6):
        column = values[:, neuron].astype(np.float32)
        expected, _ = np.histogram(column, bins=n_bins, range=(-half_width, half_width))
        np.testing.assert_array_equal(counts[neuron], expected)
        assert below[neuron] == np.count_nonzero(column < np.float32(-half_width))
        assert above[neuron] == np.count_nonzero(column > np.float32(half_width))
        assert below[neuron] + above[neuron] == len(column) - expected.sum()


def test_values_at_the_interval_ends_and_nan_are_placed_like_np_histogram():
    values = np.array([[-1.0], [1.0], [0.0], [1.5], [np.nan], [np.inf], [-np.inf]], dtype=np.float32)
    counts, below, above = histogram_counts(values, bin_edges(-1.0, 1.0))
    assert counts[0, 0] == 1 and counts[0, -1] == 1 and counts[0, 100] == 1
    assert counts.sum() == 3 and below[0] == 1 and above[0] == 3  # 1.5, NaN and inf above


def test_chunked_analysis_equals_one_chunk():
    rng = np.random.default_rng(1)
    values = (rng.normal(0, 2, (1001, 7)) + 20 * rng.random(7)).astype(np.float32)
    streamed = analyse_state((1, "c"), values, chunk_rows=64)
    whole = analyse_state((1, "c"), values, chunk_rows=len(values))
    assert streamed.interval == whole.interval
    np.testing.assert_array_equal(streamed.counts, whole.counts)
    np.testing.assert_array_equal(streamed.outside, whole.outside)
    np.testing.assert_array_equal(streamed.frac_near_zero, whole.frac_near_zero)
    for name in ("mean", "mean_abs", "kl_p_q", "kl_q_p", "js"):
        np.testing.assert_allclose(getattr(streamed, name), getattr(whole, name), rtol=1e-12)
    np.testing.assert_allclose(streamed.std, whole.std, rtol=1e-6)  # float32 values, shifted per chunk


def test_moments_match_numpy_despite_a_large_mean():
    rng = np.random.default_rng(2)
    values = (300 + rng.normal(0, 0.01, (5000, 3))).astype(np.float32)
    stats = analyse_state((1, "c"), values, chunk_rows=700)
    exact = values.astype(np.float64)
    np.testing.assert_allclose(stats.mean, exact.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, exact.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.mean_abs, np.abs(exact).mean(axis=0), rtol=1e-12)
    assert stats.mean_abs_activation == pytest.approx(np.abs(exact).mean(), rel=1e-12)


def smoothed_reference(counts, k):
    """p_n and q by hand: counts plus k over total plus k S, q from the mean counts."""
    p = (counts + k) / (counts + k).sum(axis=1, keepdims=True)
    mean = counts.mean(axis=0) + k
    return p, mean / mean.sum()


@pytest.mark.parametrize("k", [0.5, 0.01, 2.0])
def test_divergences_of_add_k_smoothed_counts_equal_scipy(k):
    rng = np.random.default_rng(3)
    counts = rng.poisson(rng.uniform(0, 5, (6, 30))).astype(np.int64)  # (H, S), many zeros
    counts[0, :20] = 0  # a neuron that never reaches two thirds of the slots
    result = divergences(counts, k)
    p, q = smoothed_reference(counts, k)
    for n in range(6):
        assert result.kl_p_q[n] == pytest.approx(entropy(p[n], q), rel=1e-9)
        assert result.kl_q_p[n] == pytest.approx(entropy(q, p[n]), rel=1e-9)
        assert result.js[n] == pytest.approx(jensenshannon(p[n], q) ** 2, rel=1e-6)
    assert (result.js <= math.log(2)).all()


def test_kl_no_longer_counts_ln_one_over_epsilon_per_empty_bin():
    """With epsilon = 1e-10, KL(q || p) of a neuron that never reaches half of q's mass was
    about 0.5 ln(1e10) = 11.5 nats whatever the neuron did elsewhere; add-0.5 smoothing of
    2,000 values gives ln-ratios of about ln(1000 / 0.5), well below."""
    counts = np.zeros((2, 4), dtype=np.int64)
    counts[0] = [1000, 1000, 0, 0]
    counts[1] = [0, 0, 1000, 1000]
    result = divergences(counts, 0.5)
    p, q = smoothed_reference(counts, 0.5)
    assert result.kl_q_p[0] == pytest.approx(entropy(q, p[0]))
    assert result.kl_q_p[0] < 4 < 0.5 * math.log(1e10)


def test_average_is_the_mean_share_of_the_neurons_values():
    rng = np.random.default_rng(4)
    values = np.tanh(rng.normal(0, [0.2, 1.0, 3.0], (2000, 3))).astype(np.float32)
    stats = analyse_state((2, "h"), values)
    counts = np.stack([np.histogram(values[:, n], bins=200, range=(-1, 1))[0] for n in range(3)])
    np.testing.assert_allclose(stats.average, (counts / 2000).mean(axis=0))
    every = np.concatenate([np.zeros((3, 1)), counts, np.zeros((3, 1))], axis=1)  # the overflow slots
    p, q = smoothed_reference(every, 0.5)
    np.testing.assert_allclose(stats.kl_p_q, [entropy(p[n], q) for n in range(3)], rtol=1e-9)
    np.testing.assert_allclose(stats.kl_q_p, [entropy(q, p[n]) for n in range(3)], rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_near_zero_boundary(dtype):
    small = np.array([0.01, -0.01, 0.0, 0.005] * 23, dtype=dtype)[:91]  # ±0.01 count as near zero
    large = np.full(9, 0.5, dtype=dtype)
    exactly_90 = np.concatenate([small[:90], np.full(10, 0.5, dtype=dtype)])  # 90 of 100
    above_90 = np.concatenate([small, large])  # 91 of 100
    just_outside = np.concatenate([np.full(91, 0.0101, dtype=dtype), large])
    values = np.stack([exactly_90, above_90, just_outside], axis=1)
    stats = analyse_state((1, "h"), values)
    np.testing.assert_allclose(stats.frac_near_zero, [0.9, 0.91, 0.0])
    np.testing.assert_array_equal(stats.near_zero, [False, True, False])


def test_ranking_puts_near_zero_neurons_last():
    score = np.array([5.0, 9.0, 1.0, 7.0, np.nan, 3.0])
    near_zero = np.array([False, True, False, False, False, True])
    rank = rank_neurons(score, near_zero)
    np.testing.assert_array_equal(rank, [2, 5, 3, 1, 4, 6])


def test_rerank_by_either_kl_equals_analysing_with_it():
    rng = np.random.default_rng(5)
    values = np.tanh(rng.normal(0, rng.uniform(0.1, 2, 12), (800, 12))).astype(np.float32)
    capture = make_capture({(1, "h"): values})
    by_sum = analyse_distributions(capture)
    for rank_by in ("kl_p_q", "kl_q_p", "js"):
        direct = analyse_distributions(capture, rank_by=rank_by)[(1, "h")]
        reranked = by_sum.reranked(rank_by)[(1, "h")]
        np.testing.assert_array_equal(direct.rank, reranked.rank)
        np.testing.assert_array_equal(direct.score, getattr(direct, rank_by))
        assert direct.rank[np.argmax(getattr(direct, rank_by))] == 1
    stats = by_sum[(1, "h")]
    np.testing.assert_allclose(stats.score, stats.kl_p_q + stats.kl_q_p)
    assert stats.rank[np.argmax(stats.score)] == 1
    with pytest.raises(ReportgenError):
        analyse_distributions(capture, rank_by="entropy")


def test_observed_cell_interval_is_the_rounded_up_percentile():
    rng = np.random.default_rng(6)
    values = rng.normal(0, 3, (20000, 5)).astype(np.float32)
    expected = math.ceil(np.percentile(np.abs(values), 99.9, method="inverted_cdf") / 0.01) * 0.01
    assert observed_cell_interval(values, chunk_rows=3000) == pytest.approx(expected)
    stats = analyse_state((1, "c"), values)
    assert stats.interval == (-round(expected, 2), round(expected, 2))
    outside_share = (np.abs(values) > np.float32(expected)).mean()
    assert stats.share_outside == pytest.approx(outside_share)
    assert 0 < stats.share_outside <= 0.001


def test_cell_interval_option_overrides_and_is_checked():
    rng = np.random.default_rng(7)
    capture = make_capture({(1, "h"): rng.uniform(-1, 1, (50, 3)).astype(np.float32),
                            (1, "c"): rng.normal(0, 3, (50, 3)).astype(np.float32)})
    result = analyse_distributions(capture, cell_interval=2.345)
    assert result[(1, "c")].interval == (-2.35, 2.35)
    assert result[(1, "c")].counts.shape == (3, 470)
    assert result[(1, "h")].interval == (-1.0, 1.0)
    for bad in (0.0, -1.0, float("nan"), 1e6):
        with pytest.raises(ReportgenError, match="cell-interval"):
            analyse_distributions(capture, cell_interval=bad)


def test_values_outside_the_interval_count_in_overflow_slots_and_in_the_kl():
    """A counter-like unit whose values lie beyond [-1, 1] keeps them: its KL is that of its
    counts with the two overflow slots, and it is the most distinctive unit, not the last."""
    rng = np.random.default_rng(11)
    inside = rng.uniform(-0.9, 0.9, (1000, 3))
    counter = np.concatenate([rng.uniform(1.5, 3, 700), rng.uniform(-3, -1.5, 200),
                              rng.uniform(-0.5, 0.5, 100)])
    values = np.column_stack([inside, counter]).astype(np.float32)  # (1000, 4)
    stats = analyse_state((1, "c"), values, cell_interval=1.0)
    edges = np.linspace(-1, 1, 201)
    counts = np.stack([np.histogram(values[:, n], bins=edges)[0] for n in range(4)])
    below = (values < -1).sum(axis=0)
    above = (values > 1).sum(axis=0)
    np.testing.assert_array_equal(stats.below, below)
    np.testing.assert_array_equal(stats.above, above)
    assert (below[3], above[3]) == (200, 700)
    every = np.concatenate([below[:, None], counts, above[:, None]], axis=1)
    p, q = smoothed_reference(every, 0.5)
    np.testing.assert_allclose(stats.kl_p_q, [entropy(p[n], q) for n in range(4)], rtol=1e-9)
    np.testing.assert_allclose(stats.kl_q_p, [entropy(q, p[n]) for n in range(4)], rtol=1e-9)
    assert np.isfinite(stats.score).all() and stats.rank[3] == 1
    np.testing.assert_allclose(stats.neuron_share_outside, (np.abs(values) > 1).mean(axis=0))
    frame = analyse_distributions(make_capture({(1, "c"): values}), cell_interval=1.0).to_frame()
    np.testing.assert_allclose(frame["share_outside"], [0, 0, 0, 0.9])
    assert stats.share_outside == pytest.approx(0.9 / 4)


def test_stability_equals_the_halves_analysed_apart_and_scipy_spearman():
    rng = np.random.default_rng(12)
    values = np.tanh(rng.normal(0, rng.uniform(0.05, 2, 60), (3001, 60))).astype(np.float32)
    values[:, :3] *= 0.001  # three near-zero neurons, left out of the comparison
    stats = analyse_state((1, "h"), values, rank_by="js")
    first = analyse_state((1, "h"), values[:1500], rank_by="js")
    second = analyse_state((1, "h"), values[1500:], rank_by="js")
    np.testing.assert_allclose(stats.halves[0].js, first.js, rtol=1e-12)
    np.testing.assert_allclose(stats.halves[1].kl_q_p, second.kl_q_p, rtol=1e-12)
    kept = ~stats.near_zero
    assert kept.sum() == 57
    top_first = set(np.argsort(-first.js[kept], kind="stable")[:20])
    top_second = set(np.argsort(-second.js[kept], kind="stable")[:20])
    stability = stats.stability
    assert stability.top_n == 20
    assert stability.top_overlap == len(top_first & top_second)
    assert stability.spearman == pytest.approx(spearmanr(first.js[kept], second.js[kept])[0])
    assert stability.spearman > 0.9  # the same neurons in both halves: a stable ranking


def test_stability_of_few_or_constant_scores():
    few = ranking_stability(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]),
                            np.zeros(3, bool))
    assert (few.top_n, few.top_overlap) == (3, 3) and few.spearman == pytest.approx(-1.0)
    flat = ranking_stability(np.ones(4), np.arange(4.0), np.zeros(4, bool))
    assert math.isnan(flat.spearman)


def test_scores_of_each_ranking():
    result = Divergences(np.array([1.0, 2.0]), np.array([0.5, 0.1]), np.array([0.2, 0.3]))
    np.testing.assert_allclose(result.score("score"), [1.5, 2.1])
    np.testing.assert_allclose(result.score("js"), [0.2, 0.3])
    with pytest.raises(ReportgenError, match="unknown ranking"):
        result.score("entropy")


def test_kl_smoothing_is_checked():
    capture = make_capture({(1, "h"): np.zeros((10, 2), dtype=np.float32)})
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ReportgenError, match="kl-smoothing"):
            analyse_distributions(capture, kl_smoothing=bad)


def test_non_finite_states_are_reported():
    values = np.zeros((10, 2), dtype=np.float32)
    values[3, 1] = np.nan
    with pytest.raises(ReportgenError, match="L2-h"):
        analyse_distributions(make_capture({(2, "h"): values}))


def test_frame_has_the_export_columns_for_every_state():
    rng = np.random.default_rng(8)
    capture = make_capture({(1, "h"): rng.uniform(-1, 1, (40, 3)).astype(np.float32),
                            (1, "c"): rng.normal(0, 1, (40, 3)).astype(np.float16),
                            (2, "h"): rng.uniform(-1, 1, (40, 4)).astype(np.float32)})
    result = analyse_distributions(capture)
    frame = result.to_frame()
    assert list(frame.columns) == list(NEURON_COLUMNS)
    assert len(frame) == 10
    assert list(zip(frame["layer"], frame["state"]))[::3][:3] == [(1, "h"), (1, "c"), (2, "h")]
    assert (frame["label"] == "").all() and frame["label_auroc"].isna().all()
    summary = result.summary_frame()
    assert list(summary["state"]) == ["h", "c", "h"]
    assert summary["mean_abs_activation"].iloc[0] == pytest.approx(np.abs(capture.states[(1, "h")]).mean())


def test_relu_hidden_states_are_binned_over_an_interval_from_the_data():
    """The h of an RNN_RELU is not bounded by tanh: most of these values lie beyond 1. Binned
    over [-1, 1] they would mostly fall outside; from the data, about 0.1% does."""
    rng = np.random.default_rng(5)
    values = np.maximum(rng.normal(1.0, 1.5, (4000, 4)), 0).astype(np.float32)
    assert (values > 1).mean() > 0.4
    tanh_bins = analyse_state((1, "h"), values)
    assert tanh_bins.bounded and tanh_bins.share_outside > 0.4
    stats = analyse_state((1, "h"), values, unbounded_hidden=True)
    expected = observed_cell_interval(values)
    assert not stats.bounded and expected > 1
    assert float(stats.edges[-1]) == pytest.approx(expected) == -float(stats.edges[0])
    assert stats.share_outside <= 0.001
    given = analyse_state((1, "h"), values, cell_interval=0.5, unbounded_hidden=True)
    assert float(given.edges[-1]) == pytest.approx(expected)  # --cell-interval is for c only


def test_relu_report_says_its_h_is_unbounded(tmp_path):
    """End to end: a ReLU RNN's page must not call its h bounded by tanh, and must bin it over
    an interval that holds nearly all of its values."""
    import torch

    from reportgen.inputs.corpus import vocabulary_from_folder
    from reportgen.inputs.model import RNNModel
    from reportgen.render.pages import SiteOptions
    from reportgen.runs.report import ReportConfig, build_report

    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        (data / name).write_text("the cat sat on the mat .\n" * 20, encoding="utf-8")
    torch.manual_seed(0)
    model = RNNModel("RNN_RELU", len(vocabulary_from_folder(data)), 4, 6, 1, 0.0)
    with torch.no_grad():
        model.encoder.weight.mul_(20)  # h well beyond 1
        model.rnn.weight_ih_l0.mul_(10)
    torch.save(model.state_dict(), tmp_path / "relu.pt")
    out = build_report(ReportConfig(tmp_path / "relu.pt", tmp_path / "site", data=data,
                                    rnn_type="RNN_RELU", quiet=True, embed_states=(),
                                    cache=None, site=SiteOptions(top_neurons=1, images=False)))
    page = (out / "neurons.html").read_text(encoding="utf-8")
    assert "bounded by tanh" not in page
    assert "h of a ReLU RNN has no bound" in page
    interval = page.split("Histogram interval [")[1].split("]")[0]
    assert float(interval.split(",")[1]) > 1  # h reaches beyond tanh's bound
    outside = float(page.split("% of values fell outside")[0].rsplit(" ", 1)[-1])
    assert outside <= 0.2
