"""The comparison of several models: its table, its charts' data and its page, on captures built
with numpy, so every figure can be recomputed here from the states themselves.

`independent_kl_scores` recomputes the KL score of every neuron with `np.histogram`, apart from
the streamed counting of `reportgen.analysis.distributions`; test_sweep.py uses it too.
"""

from __future__ import annotations

import html
import importlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from reportgen.analysis.ablation import AblationOptions
from reportgen.analysis.bundle import ModelReport, ModelSummary
from reportgen.analysis.comparison import COMPARISON_COLUMNS, ModelFailure
from reportgen.analysis.distributions import analyse_distributions
from reportgen.analysis.embedding import EmbeddingOptions
from reportgen.capture.core import Capture, state_name
from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import load_checkpoint, save_checkpoint
from reportgen.render.comparable import compare_models as compare
from reportgen.render.comparable import figures_of
from reportgen.render.pages import SiteOptions
from reportgen.render.site import write_comparison
from reportgen.runs import combine, model_matches, multi_report
from reportgen.runs.model_specs import ModelSpec
from reportgen.runs.multi_report import build_reports
from reportgen.runs.report import ReportConfig

report_module = importlib.import_module("reportgen.runs.report")  # reportgen.runs.report is re-exported

VOCABULARY = ["<eos>", "the", "cat", "sat", "on", "mat", "."]
T, H = 300, 8
PLANTED_NEAR_ZERO = {(1, "h"): [2, 5], (1, "c"): [1]}
SMOOTHING = 0.5  # the documented add-k smoothing of every bin's count


def independent_kl_scores(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H,) KL(p||q) + KL(q||p) per neuron over 0.01 bins of [low, high] by np.histogram, plus
    one overflow bin at each end, every count add-0.5 smoothed, q from the mean counts."""
    n_bins = round((high - low) / 0.01)
    values = values.astype(np.float32)
    counts = np.stack([np.concatenate([
        [np.count_nonzero(values[:, n] < np.float32(low))],
        np.histogram(values[:, n], bins=n_bins, range=(low, high))[0],
        [np.count_nonzero(values[:, n] > np.float32(high))]]) for n in range(values.shape[1])])
    p = (counts + SMOOTHING) / (counts + SMOOTHING).sum(axis=1, keepdims=True)
    q = counts.mean(axis=0) + SMOOTHING
    q = q / q.sum()
    return (p * np.log(p / q)).sum(axis=1) + (q * np.log(q / p)).sum(axis=1)


def near_zero_count(values: np.ndarray) -> int:
    return int(((np.abs(values) <= np.float32(0.01)).mean(axis=0) > 0.9).sum())


def synthetic_capture(rng_seed: int, scale: float = 1.0) -> Capture:
    """Two states of one layer; planted near-zero neurons; `scale` shrinks the activations."""
    rng = np.random.default_rng(rng_seed)
    ids = rng.integers(0, len(VOCABULARY), T)
    states = {
        (1, "h"): np.tanh(rng.normal(0.0, scale, (T, H))).astype(np.float32),
        (1, "c"): rng.normal(0.0, 0.5 * scale, (T, H)).astype(np.float32),
    }
    for key, neurons in PLANTED_NEAR_ZERO.items():
        states[key][:, neurons] = rng.uniform(-0.004, 0.004, (T, len(neurons)))
    log_prob = np.log(rng.uniform(0.05, 1.0, T)).astype(np.float32)
    log_prob[-1] = np.nan
    return Capture(token_ids=ids, tokens=[VOCABULARY[i] for i in ids], states=states,
                   log_prob_next=log_prob, top_ids=np.zeros((T, 5), dtype=np.int64),
                   top_log_probs=np.zeros((T, 5), dtype=np.float32), vocabulary=list(VOCABULARY))


def synthetic_report(name: str, rng_seed: int, dropout: float | None = None,
                     seed: int | None = None, checkpoint_format: str = "reportgen",
                     hyper_dropout: float = 0.0, scale: float = 1.0,
                     text_sha256: str = "a" * 64,
                     vocabulary: list[str] | None = None) -> ModelReport:
    capture = synthetic_capture(rng_seed, scale)
    if vocabulary is not None:
        capture.vocabulary = vocabulary
    metadata = {key: value for key, value in (("dropout", dropout), ("seed", seed))
                if value is not None}
    summary = ModelSummary(
        name=name, hyperparameters={"rnn_type": "LSTM", "nlayers": 1, "nhid": H,
                                    "dropout": hyper_dropout},
        vocabulary_size=len(capture.vocabulary), checkpoint_name="model.pt",
        checkpoint_format=checkpoint_format, checkpoint_sha256="0" * 64, text_name="test.txt",
        text_sha256=text_sha256, n_tokens=T, n_unknown=0, perplexity=capture.perplexity(),
        truncated=False, metadata=metadata,
    )
    return ModelReport(summary, capture, distributions=analyse_distributions(capture))


@pytest.fixture(scope="module")
def reports() -> list[ModelReport]:
    """Dropout 0.5 with three seeds (their mean is not their median), dropout 0 with one, given
    out of order."""
    return [
        synthetic_report("d05-s2", 1, dropout=0.5, seed=2, scale=0.5),
        synthetic_report("d0-s1", 2, dropout=0.0, seed=1),
        synthetic_report("d05-s1", 3, dropout=0.5, seed=1, scale=0.4),
        synthetic_report("d05-s3", 4, dropout=0.5, seed=3, scale=1.5),
    ]


def test_table_figures_equal_those_computed_from_the_states(reports) -> None:
    table = compare(reports).table
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert len(table) == len(reports) * 2
    for report in reports:
        cap = report.capture
        perplexity = math.exp(-np.mean(cap.log_prob_next[:-1].astype(np.float64)))
        for key, values in cap.states.items():
            row = table[(table.model == report.summary.name) & (table.layer == key[0])
                        & (table.state == key[1])].iloc[0]
            assert row.perplexity == pytest.approx(perplexity, rel=1e-9)
            assert row.mean_abs == pytest.approx(np.abs(values.astype(np.float64)).mean(), rel=1e-9)
            assert row.n_near_zero == near_zero_count(values) == len(PLANTED_NEAR_ZERO[key])
            assert row.near_zero_share == pytest.approx(len(PLANTED_NEAR_ZERO[key]) / H)
            assert row.n_neurons == H
            stats = report.distributions[key]
            scores = independent_kl_scores(values, *stats.interval)
            quartiles = np.quantile(scores, [0.25, 0.5, 0.75])
            assert [row.kl_score_q1, row.kl_score_median, row.kl_score_q3] == pytest.approx(
                quartiles, rel=1e-6)
            assert row.kl_score_min == pytest.approx(scores.min(), rel=1e-6)
            assert row.kl_score_max == pytest.approx(scores.max(), rel=1e-6)
            assert row.kl_score_mean == pytest.approx(scores.mean(), rel=1e-6)


def test_models_are_ordered_by_dropout_then_seed(reports) -> None:
    comparison = compare(reports)
    order = ["d0-s1", "d05-s1", "d05-s2", "d05-s3"]
    assert [m.name for m in comparison.models] == order
    assert list(comparison.table.drop_duplicates("model").model) == order


def test_dropout_and_seed_come_from_metadata_else_from_the_pickle() -> None:
    ours = figures_of(synthetic_report("ours", 1, dropout=0.3, seed=4, hyper_dropout=0.3))
    pickle = figures_of(synthetic_report("pickle", 2, checkpoint_format="pytorch-examples pickle",
                                         hyper_dropout=0.65))
    state_dict = figures_of(synthetic_report("bare", 3, checkpoint_format="state dict"))
    assert (ours.dropout, ours.seed) == (0.3, 4)
    assert (pickle.dropout, pickle.seed) == (0.65, None)
    assert (state_dict.dropout, state_dict.seed) == (None, None)


def test_spread_over_seeds_is_drawn_from_the_seeds_of_each_dropout(reports) -> None:
    comparison = compare(reports)
    spec = comparison.perplexity_chart().to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["rule", "line", "point"]
    records = spec["data"]["values"]
    by_dropout: dict[float, list[float]] = {}
    for report in reports:
        by_dropout.setdefault(report.summary.metadata["dropout"], []).append(
            report.summary.perplexity)
    for record in records:
        seeds = by_dropout[record["dropout"]]
        assert record["perplexity_mean"] == pytest.approx(np.mean(seeds))
        assert record["perplexity_low"] == pytest.approx(min(seeds))
        assert record["perplexity_high"] == pytest.approx(max(seeds))
    states = comparison.mean_abs_chart().to_dict()
    for record in states["data"]["values"]:
        same = [np.abs(r.capture.states[(1, record["state"][-1])]).mean() for r in reports
                if r.summary.metadata["dropout"] == record["dropout"]]
        assert record["mean_abs_mean"] == pytest.approx(np.mean(same), rel=1e-6)
        assert record["mean_abs_high"] == pytest.approx(max(same), rel=1e-6)


def test_one_seed_per_dropout_draws_no_spread(reports) -> None:
    spec = compare(reports[:2]).perplexity_chart().to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "point"]


def test_model_with_unknown_dropout_is_in_the_table_but_not_against_dropout(reports) -> None:
    bare = synthetic_report("bare", 9, checkpoint_format="state dict")
    comparison = compare([*reports, bare])
    assert comparison.without_dropout == ["bare"]
    assert "bare" in set(comparison.table.model)
    assert math.isnan(comparison.table[comparison.table.model == "bare"].dropout.iloc[0])
    perplexity = comparison.perplexity_chart().to_dict()["data"]["values"]
    near_zero = comparison.near_zero_chart().to_dict()["data"]["values"]
    kl = comparison.kl_chart().to_dict()["data"]["values"]
    assert "bare" not in {r["model"] for r in perplexity + near_zero}
    assert "bare" in {r["model"] for r in kl}


def test_kl_chart_carries_the_quartiles_of_each_models_scores(reports) -> None:
    """Each box's figures, recomputed from the model's states with np.histogram and
    np.quantile, apart from the comparison's table."""
    by_name = {report.summary.name: report for report in reports}
    records = compare(reports).kl_chart().to_dict()["data"]["values"]
    assert len(records) == len(reports) * 2
    for record in records:
        report = by_name[record["model"]]
        key = next(key for key in report.capture.states if state_name(key) == record["state"])
        scores = independent_kl_scores(report.capture.states[key],
                                       *report.distributions[key].interval)
        q1, median, q3 = np.quantile(scores, [0.25, 0.5, 0.75])
        assert [record["kl_min"], record["kl_q1"], record["kl_median"], record["kl_q3"],
                record["kl_max"]] == pytest.approx([scores.min(), q1, median, q3, scores.max()],
                                                   rel=1e-6)


@pytest.mark.parametrize("other, fragment", [
    (dict(text_sha256="b" * 64), "were read on different texts"),
    (dict(vocabulary=VOCABULARY[::-1]), "have different vocabularies"),
])
def test_models_of_different_texts_or_vocabularies_are_refused(reports, other, fragment) -> None:
    odd = synthetic_report("odd", 7, dropout=0.2, **other)
    with pytest.raises(ReportgenError, match=fragment) as raised:
        compare([*reports, odd])
    assert "odd" in str(raised.value)


def test_two_models_of_one_name_are_refused(reports) -> None:
    with pytest.raises(ReportgenError, match="two models are named 'd0-s1'"):
        compare([reports[1], synthetic_report("d0-s1", 8, dropout=0.1)])


def test_report_without_distributions_is_refused() -> None:
    report = synthetic_report("bare", 1)
    report.distributions = None
    with pytest.raises(ReportgenError, match="no neuron distributions"):
        compare([report])


def page_specs(page: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" id="spec-([^"]+)">(.*?)</script>',
                       page, re.S)
    return {chart_id: json.loads(text) for chart_id, text in found}


def test_page_links_models_shows_failures_and_escapes_names(reports, tmp_path: Path) -> None:
    hostile = synthetic_report("<img src=x>", 5, dropout=0.1, seed=1)
    failure = ModelFailure("broken", "runs/broken.pt", "runs/broken.pt: <b>damaged</b>")
    figures = [figures_of(r, href=f"{r.summary.name}/index.html") for r in [*reports, hostile]]
    comparison = compare(figures, [failure])
    write_comparison(comparison, tmp_path, "Dropout <sweep>", SiteOptions(images=True))
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<img" not in page and "<b>" not in page
    assert "Dropout &lt;sweep&gt;" in page
    for report in reports:
        assert f'href="{report.summary.name}/index.html"' in page
    failures = page[page.index('id="failures"'):page.index("</section>")]
    assert "broken" in failures and html.escape(failure.message) in failures
    specs = page_specs(page)
    assert set(specs) == {"perplexity", "mean-abs", "near-zero", "kl-scores"}
    shown = {r["model"]: r["perplexity"] for r in specs["perplexity"]["data"]["values"]}
    assert shown == {f.name: pytest.approx(f.perplexity, rel=5e-4) for f in figures}  # 4 digits
    written = pd.read_csv(tmp_path / "data" / "comparison.csv")
    pd.testing.assert_frame_equal(written, comparison.table, check_dtype=False, rtol=1e-7)
    for chart_id in specs:
        for suffix in ("svg", "png"):
            assert (tmp_path / "img" / f"comparison-{chart_id}.{suffix}").stat().st_size > 0


def test_a_multi_model_report_analyses_each_model_once_and_aligns_once(
        tiny_model: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each analysis runs once per model and the units are aligned once, with or without the
    cache (an earlier version analysed every model twice, aligned twice, and gave each report
    the first pass's timings); the timings in each report.json are its own analysis's."""
    calls: dict[str, list[str]] = {}

    def counted(module: object, name: str) -> None:
        original = getattr(module, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            calls.setdefault(name, []).append(str(args[0].name if name == "analyse" else ""))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for name in ("analyse", "analyse_distributions", "analyse_concepts", "analyse_gates",
                 "analyse_correlations", "embed"):
        counted(report_module if name != "analyse" else multi_report, name)
    counted(model_matches, "align_models")
    counted(combine, "align_models")
    loaded = load_checkpoint(tiny_model)  # a second model: the same one, its weights moved
    with torch.no_grad():
        for weight in loaded.model.parameters():
            weight.mul_(1.01)
    save_checkpoint(loaded.model, tmp_path / "second.pt", loaded.vocabulary)
    models = [ModelSpec(tiny_model, "first"), ModelSpec(tmp_path / "second.pt", "second")]
    for cache in (tmp_path / "cache", None):
        calls.clear()
        out = tmp_path / ("cached" if cache else "uncached")
        config = ReportConfig(checkpoint=tiny_model, data=tiny_corpus, out=out, max_tokens=400,
                              cache=cache, embed_states=((1, "h"),), quiet=True, threads=1,
                              embedding=EmbeddingOptions(max_points=100, cuts=(4,)),
                              ablation=AblationOptions(tokens=0),
                              site=SiteOptions(images=False, comparison_positions=200))
        build_reports(models, config)
        assert sorted(calls["analyse"]) == ["first", "second"], cache
        for name in ("analyse_distributions", "analyse_concepts", "analyse_gates",
                     "analyse_correlations", "embed"):
            assert len(calls[name]) == 2, (name, cache)
        assert len(calls["align_models"]) == 1, cache
        for model in ("first", "second"):
            record = json.loads((out / model / "data" / "report.json").read_text())
            assert record["capture_reused_from_cache"] is False
            assert record["analyses_reused_from_cache"] == []
            assert record["timings_seconds"]["capture"] > 0
