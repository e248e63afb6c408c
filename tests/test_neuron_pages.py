"""The neurons section: neurons.html, the neuron pages and data/neurons.csv, on a real model.

The figures are checked against a fresh capture of the same model and text, recomputed here
with numpy and scipy; the pages are parsed back and compared with that capture.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from reportgen.analysis.bundle import ModelReport, ModelSummary
from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.distributions import NEURON_COLUMNS, analyse_distributions
from reportgen.capture.core import Capture, capture
from reportgen.cli.main import main
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import load_vocabulary, tokenize
from reportgen.inputs.features import token_features
from reportgen.render.pages import SiteOptions
from reportgen.render.pages.unit_contexts import EXCERPTS
from reportgen.render.site import write_site

CELL_INTERVAL = 1.5
SPEC = re.compile(r'<script type="application/json" id="spec-([^"]+)">(.*?)</script>', re.S)
EXCERPT = re.compile(r'<div class="heatmap excerpt"[^>]*data-start="(\d+)"[^>]*>(.*?)</div>', re.S)
SPAN = re.compile(r'<span(?: class="([^"]*)")? style="background:#(\w\w)\w\w(\w\w)" '
                  r'data-tip="([^"]*)">')
ROW = re.compile(r'<tr>\s*<td class="num" data-value="(\d+)">\d+</td>\s*'
                 r'<td class="num"><a href="neuron/(L\d+-[hc]-\d{4})\.html">(\d+)</a>')


def report_with_cli(checkpoint: Path, data: Path, out: Path, *flags: str) -> Path:
    """The neuron pages only: the t-SNE maps and the figures are other tests' business."""
    code = main(["report", str(checkpoint), "--data", str(data), "--out", str(out), "--quiet",
                 "--no-clusters", "--no-images", *flags])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def site(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("neuron-sites") / "default"
    return report_with_cli(tiny_model, tiny_corpus, out, "--cell-interval", str(CELL_INTERVAL))


@pytest.fixture(scope="module")
def fresh(tiny_model: Path, tiny_corpus: Path) -> Capture:
    """The same model run again over the same text, independently of the report."""
    loaded = load_checkpoint(tiny_model)
    vocabulary = load_vocabulary(tiny_corpus)
    text = tokenize(tiny_corpus / "test.txt", vocabulary)
    return capture(loaded.model, text.ids, text.tokens, vocabulary.words)


@pytest.fixture(scope="module")
def neurons(site: Path) -> pd.DataFrame:
    return pd.read_csv(site / "data" / "neurons.csv", keep_default_na=False, na_values=[""])


def specs_of(page: Path) -> dict[str, dict]:
    return {name: json.loads(body) for name, body in SPEC.findall(page.read_text(encoding="utf-8"))}


def state_section(page_text: str, name: str) -> str:
    start = page_text.index(f'<section class="neuron-state" id="{name}">')
    return page_text[start : page_text.index("</section>", start)]


def expected_top(frame: pd.DataFrame, n: int) -> dict[str, list[int]]:
    """Per `L1-h` name: the n best-ranked neurons that are not near zero, from the csv."""
    top = {}
    for (layer, state), rows in frame.groupby(["layer", "state"]):
        ranked = rows[rows["near_zero"] == 0].sort_values("rank")
        top[f"L{layer}-{state}"] = ranked["neuron"].head(n).tolist()
    return top


def test_neurons_csv_has_the_design_columns_for_every_neuron(neurons: pd.DataFrame,
                                                             fresh: Capture) -> None:
    features = token_features(fresh.tokens).names
    assert list(neurons.columns) == [
        *NEURON_COLUMNS, "labels", *[f"auroc_{name}" for name in features],
        *[f"within_auroc_{name}" for name in features], "output_promotes", "output_suppresses",
        "ablation_delta_loss", *[f"ablation_delta_loss_{name}" for name in features],
        *[f"gate_{gate}_{side}" for gate in "ifo" for side in ("left", "right")],
        "forget_time_constant", "forget_time_constant_product", "top_correlated", "top_correlated_r"]
    assert len(neurons) == sum(values.shape[1] for values in fresh.states.values())
    labelled = neurons[neurons["labels"].notna()]
    strongest = labelled["labels"].str.split(" ").str[0]
    assert (strongest == labelled["label"] + ":" + labelled["label_auroc"].map("{:.3f}".format)).all()
    assert set(neurons["state"]) == {"h", "c"} and set(neurons["layer"]) == {1, 2}
    assert set(neurons["near_zero"]) <= {0, 1}
    for _, rows in neurons.groupby(["layer", "state"]):
        assert sorted(rows["rank"]) == list(range(1, len(rows) + 1))


def test_neurons_csv_matches_a_recomputation_from_a_fresh_capture(neurons: pd.DataFrame,
                                                                  fresh: Capture) -> None:
    for (layer, state), values in fresh.states.items():
        half_width = 1.0 if state == "h" else CELL_INTERVAL
        n_bins = round(2 * half_width / 0.01)
        counts = np.stack([
            np.histogram(values[:, n], bins=n_bins, range=(-half_width, half_width))[0]
            for n in range(values.shape[1])
        ])  # (H, B)
        below = (values < -half_width).sum(axis=0)
        above = (values > half_width).sum(axis=0)
        every = np.concatenate([below[:, None], counts, above[:, None]], axis=1) + 0.5  # add-0.5
        p = every / every.sum(axis=1, keepdims=True)
        q = every.mean(axis=0) / every.mean(axis=0).sum()
        rows = neurons[(neurons["layer"] == layer) & (neurons["state"] == state)]
        rows = rows.set_index("neuron")
        for n in (0, values.shape[1] // 2, values.shape[1] - 1):
            x = values[:, n].astype(np.float64)
            row = rows.loc[n]
            assert row["mean_abs"] == pytest.approx(np.abs(x).mean(), rel=1e-6)
            assert row["mean"] == pytest.approx(x.mean(), rel=1e-6, abs=1e-9)
            assert row["std"] == pytest.approx(x.std(), rel=1e-6)
            near = np.abs(values[:, n]) <= np.float32(0.01)
            assert row["frac_near_zero"] == pytest.approx(near.mean())
            assert row["kl_p_q"] == pytest.approx(entropy(p[n], q), rel=1e-5)
            assert row["kl_q_p"] == pytest.approx(entropy(q, p[n]), rel=1e-5)
            assert row["share_outside"] == pytest.approx((below[n] + above[n]) / len(x))
            assert row["score"] == pytest.approx(row["kl_p_q"] + row["kl_q_p"], rel=1e-6)


def test_ranking_puts_higher_scores_first_and_near_zero_neurons_last(neurons: pd.DataFrame) -> None:
    for _, rows in neurons.groupby(["layer", "state"]):
        ranked = rows.sort_values("rank")
        flags = ranked["near_zero"].to_numpy()
        assert (np.diff(flags) >= 0).all()  # every near-zero neuron after every other
        scores = ranked.loc[ranked["near_zero"] == 0, "score"].to_numpy()
        assert (np.diff(scores) <= 1e-9).all()


def concept_index_pages(site: Path) -> set[str]:
    """The neuron pages that concepts.html links."""
    source = (site / "concepts.html").read_text(encoding="utf-8")
    return {link.removeprefix("neuron/") for link in re.findall(r'href="(neuron/[^"]+)"', source)}


def test_one_page_per_top_neuron_and_per_unit_of_the_concepts_page(site: Path,
                                                                   neurons: pd.DataFrame) -> None:
    top = expected_top(neurons, SiteOptions().top_neurons)
    expected = {f"{name}-{n:04d}.html" for name, chosen in top.items() for n in chosen}
    listed = concept_index_pages(site)
    assert listed - expected, "the concepts page lists units beyond the top ones by KL"
    assert {page.name for page in (site / "neuron").iterdir()} == expected | listed
    assert len(expected) == sum(len(chosen) for chosen in top.values()) > 4


def test_ranking_tables_follow_the_rank_column(site: Path, neurons: pd.DataFrame) -> None:
    text = (site / "neurons.html").read_text(encoding="utf-8")
    for name, chosen in expected_top(neurons, SiteOptions().top_neurons).items():
        rows = ROW.findall(state_section(text, name))
        assert [int(neuron) for _, _, neuron in rows] == chosen
        assert [int(rank) for rank, _, _ in rows] == sorted(int(rank) for rank, _, _ in rows)
        assert all(page == f"{name}-{int(neuron):04d}" for _, page, neuron in rows)


def test_cell_interval_flag_sets_the_bins_and_the_page_says_so(site: Path) -> None:
    text = (site / "neurons.html").read_text(encoding="utf-8")
    cell = state_section(text, "L1-c")
    assert f"[-{CELL_INTERVAL}, {CELL_INTERVAL}]" in cell and "set by --cell-interval" in cell
    assert "[-1.0, 1.0]" in state_section(text, "L1-h")
    spec = specs_of(site / "neurons.html")["average-L1-c"]
    rows = spec["data"]["values"]
    assert min(r["start"] for r in rows) == -CELL_INTERVAL
    assert max(r["end"] for r in rows) == CELL_INTERVAL


def test_neuron_page_heatmaps_and_contexts_show_the_captured_values(site: Path,
                                                                    fresh: Capture) -> None:
    pages = sorted((site / "neuron").glob("*.html"))
    for page in pages[:: max(1, len(pages) // 6)]:
        layer, state, neuron = re.fullmatch(r"L(\d+)-([hc])-(\d{4})", page.stem).groups()
        values = fresh.states[(int(layer), state)][:, int(neuron)]  # (T,)
        text = page.read_text(encoding="utf-8")
        spans = [(*span, int(start) + index) for start, cells in EXCERPT.findall(text)
                 for index, span in enumerate(SPAN.findall(cells))]
        centres = []
        for classes, red, blue, title, position in spans:
            value = float(html.unescape(title))
            assert value == pytest.approx(float(values[int(position)]), abs=6e-5)
            if value > 0.05 * np.abs(values).max():
                assert int(red, 16) > int(blue, 16)
            if "centre" in classes.split():
                centres.append(int(position))
        assert centres[0] == int(np.argmax(values)) and len(centres) == 2 * EXCERPTS
        assert centres[EXCERPTS] == int(np.argmin(values))
        contexts = re.search(r'<table class="data contexts">(.*?)</table>', text, re.S).group(1)
        shown = [float(v) for v in re.findall(r'<tr><td class="num">([+-][0-9.]+)</td>', contexts)]
        np.testing.assert_allclose(shown, np.sort(values)[::-1][: len(shown)], atol=6e-5)


def test_chart_specs_are_json_with_the_expected_marks(site: Path, neurons: pd.DataFrame) -> None:
    specs = specs_of(site / "neurons.html")
    top = expected_top(neurons, SiteOptions().top_neurons)
    assert set(specs) == {f"{kind}-{name}" for kind in ("average", "kl") for name in top}
    for name, chosen in top.items():
        assert specs[f"average-{name}"]["mark"]["type"] == "bar"
        kl = specs[f"kl-{name}"]
        assert kl["mark"]["type"] == "point"
        assert kl["encoding"]["href"]["field"] == "href"
        assert {t["field"] for t in kl["encoding"]["tooltip"]} >= {"neuron", "labels", "kind"}
        links = {row["neuron"]: row["href"] for row in kl["data"]["values"] if row["href"]}
        paged = {int(page[5:9]) for page in concept_index_pages(site) if page.startswith(name)}
        assert links == {n: f"neuron/{name}-{n:04d}.html" for n in {*chosen, *paged}}
        assert all((site / href).is_file() for href in links.values())
    page = next((site / "neuron").glob("L2-h-*.html"))
    neuron_specs = specs_of(page)
    assert neuron_specs["histogram"]["mark"]["type"] == "bar"
    assert [layer["mark"]["type"] for layer in neuron_specs["auroc"]["layer"]] == [
        "bar", "tick", "rule"]
    series = {row["series"] for row in neuron_specs["histogram"]["data"]["values"]}
    assert series == {"average", f"neuron {int(page.stem[-4:])}"}
    for spec in neuron_specs.values():
        alt.Chart.from_dict(spec, validate=True)  # built without validation: check it here


def test_top_neurons_and_rank_by_flags(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    out = report_with_cli(tiny_model, tiny_corpus, tmp_path / "three",
                          "--top-neurons", "3", "--rank-by", "kl_q_p", "--max-tokens", "600")
    frame = pd.read_csv(out / "data" / "neurons.csv")
    top = expected_top(frame, 3)
    pages = {page.name for page in (out / "neuron").glob("*.html")}
    assert pages == {f"{name}-{n:04d}.html" for name, chosen in top.items() for n in chosen} | (
        concept_index_pages(out))
    for _, rows in frame.groupby(["layer", "state"]):
        ranked = rows[rows["near_zero"] == 0].sort_values("rank")
        assert (np.diff(ranked["kl_q_p"].to_numpy()) <= 1e-9).all()
        assert np.allclose(rows["score"], rows["kl_q_p"])


def synthetic_report(tokens: list[str], states: dict[tuple[int, str], np.ndarray]) -> ModelReport:
    """A ModelReport from a hand-made capture, its analyses run as build_report runs them."""
    n = len(tokens)
    captured = Capture(
        token_ids=np.arange(n), tokens=tokens, states=states,
        log_prob_next=np.full(n, -1.0, dtype=np.float32), top_ids=np.zeros((n, 5), dtype=np.int64),
        top_log_probs=np.full((n, 5), -1.0, dtype=np.float32), vocabulary=sorted(set(tokens)),
    )
    summary = ModelSummary("synthetic", {"rnn_type": "LSTM", "nlayers": 1, "nhid": 6}, n, "x.pt",
                           "state dict", "0" * 64, "text.txt", "0" * 64, n, 0, 2.7, False)
    features = token_features(tokens)
    return ModelReport(summary, captured, features, analyse_distributions(captured),
                       analyse_concepts(captured, features))


def test_near_zero_neurons_are_listed_apart_and_get_no_page(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    payload = "</td><script>alert(1)</script>"
    tokens = [payload if t % 17 == 0 else f"w{t % 5}" for t in range(400)]
    h = np.tanh(rng.normal(0, rng.uniform(0.3, 2, 6), (400, 6))).astype(np.float32)  # (T, 6)
    h[:, [1, 4]] *= 0.001  # every value within 0.01: near zero
    h[:, 1][:30] = 0.5  # 7.5% away from zero: still near zero
    report = synthetic_report(tokens, {(1, "h"): h, (1, "c"): 2 * h})
    out = write_site(report, tmp_path / "site", SiteOptions(top_neurons=3))
    text = (out / "neurons.html").read_text(encoding="utf-8")
    section = state_section(text, "L1-h")
    assert {int(n) for _, _, n in ROW.findall(section)}.isdisjoint({1, 4})
    assert len(ROW.findall(section)) == 3
    listed = re.search(r'<ul class="near-zero"[^>]*>(.*?)</ul>', section, re.S).group(1)
    assert [int(n) for n in re.findall(r">(\d+)</li>", listed)] == [1, 4]
    assert "2 of 6 neurons (33.3%) are near zero" in section
    assert sorted(p.name for p in (out / "neuron").glob("L1-h-*.html")) == sorted(
        f"L1-h-{n:04d}.html" for n in report.distributions[(1, "h")].top(3))
    for page in [out / "neurons.html", *(out / "neuron").glob("*.html")]:
        assert "<script>alert" not in page.read_text(encoding="utf-8"), page
    first_page = next((out / "neuron").glob("*.html")).read_text(encoding="utf-8")
    assert "&lt;/td&gt;&lt;script&gt;" in first_page


def test_unit_page_states_its_share_outside_the_interval_from_one_percent(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tokens = [f"w{t % 7}" for t in range(500)]
    h = rng.uniform(-0.9, 0.9, (500, 4)).astype(np.float32)  # (T, 4)
    h[:150, 0] = 1.5  # 30% beyond the interval [-1, 1]
    h[:5, 1] = -1.2  # 1%: at the threshold, not stated
    h[:6, 2] = -1.2  # 1.2%: stated
    report = synthetic_report(tokens, {(1, "h"): h})
    out = write_site(report, tmp_path / "site", SiteOptions(top_neurons=4))
    pages = {n: (out / "neuron" / f"L1-h-{n:04d}.html").read_text(encoding="utf-8")
             for n in range(4)}
    said = re.compile(r"([\d.]+)% of this neuron's values lie outside the histogram's interval "
                      r"\[-1\.0, 1\.0\]")
    assert [said.findall(pages[n]) for n in range(4)] == [["30.0"], [], ["1.2"], []]
    assert report.distributions[(1, "h")].rank[0] == 1  # counted, not lost: the most distinct


def test_neurons_page_and_report_json_state_the_rankings_stability(site: Path, fresh: Capture,
                                                                   neurons: pd.DataFrame) -> None:
    """Recomputed here: each half's counts by np.histogram, add-0.5 smoothing, scipy's KL and
    Spearman, over the neurons that are not near zero."""
    from scipy.stats import spearmanr

    records = {r["state"]: r for r in
               json.loads((site / "data" / "report.json").read_text())["ranking_stability"]}
    page = (site / "neurons.html").read_text(encoding="utf-8")
    assert set(records) == {f"L{layer}-{state}" for layer, state in fresh.states}
    for (layer, state), values in fresh.states.items():
        half_width = 1.0 if state == "h" else CELL_INTERVAL
        scores = []
        for half in (values[: len(values) // 2], values[len(values) // 2 :]):
            every = np.stack([np.concatenate([
                [(half[:, n] < -half_width).sum()],
                np.histogram(half[:, n], bins=round(200 * half_width), range=(-half_width, half_width))[0],
                [(half[:, n] > half_width).sum()]]) for n in range(values.shape[1])]) + 0.5
            p = every / every.sum(axis=1, keepdims=True)
            q = every.mean(axis=0) / every.mean(axis=0).sum()
            scores.append(np.array([entropy(p[n], q) + entropy(q, p[n]) for n in range(len(p))]))
        rows = neurons[(neurons["layer"] == layer) & (neurons["state"] == state)].sort_values("neuron")
        kept = rows["near_zero"].to_numpy() == 0
        first, second = scores[0][kept], scores[1][kept]
        top_n = min(20, int(kept.sum()))
        overlap = len(set(np.argsort(-first, kind="stable")[:top_n])
                      & set(np.argsort(-second, kind="stable")[:top_n]))
        rho = spearmanr(first, second)[0]
        record = records[f"L{layer}-{state}"]
        assert (record["top_n"], record["top_overlap"]) == (top_n, overlap)
        assert record["spearman"] == pytest.approx(rho, abs=1e-9)
        assert (record["rank_by"], record["kl_smoothing"]) == ("score", 0.5)
        section = state_section(page, f"L{layer}-{state}")
        assert (f"{overlap} of the top {top_n} are in both halves' top {top_n}; Spearman's ρ "
                f"between the halves' scores is {rho:.3f}") in html.unescape(section)
