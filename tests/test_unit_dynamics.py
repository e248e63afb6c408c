"""A unit's dynamics on its page: decile contexts, the trace and its shaded feature, correlated
units with working links, the gates page and the new neurons.csv columns, on a real tiny model.

Figures are checked against independent computations: `np.percentile` for the bands, a naive
loop for the feature's spans, `np.corrcoef` over a fresh capture for the top partner.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reportgen.capture.core import Capture, capture
from reportgen.charts import TRACE_POINTS, activation_trace_chart
from reportgen.cli.main import main
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import load_vocabulary, tokenize
from reportgen.render.pages.unit_contexts import CONTEXT_AFTER, CONTEXT_BEFORE
from reportgen.render.pages.unit_dynamics import (
    BANDS,
    TRACE_TOKENS,
    band_contexts,
    feature_spans,
    trace_spec,
    trace_window,
)

SPEC = re.compile(r'<script type="application/json" id="spec-([^"]+)">(.*?)</script>', re.S)
LINK = re.compile(r'<li><a href="([^"]+)">(L\d-[hc]) unit (\d+)</a>: r = ([+-][\d.]+)</li>')


def test_band_contexts_take_one_position_from_each_decile() -> None:
    values = np.random.default_rng(1).normal(size=5000).astype(np.float32)
    tokens = [f"w{i}" for i in range(len(values))]
    first = band_contexts(tokens, values, np.random.default_rng(7))
    again = band_contexts(tokens, values, np.random.default_rng(7))
    assert first == again  # seeded: the same page on every run
    assert len(first) == BANDS
    edges = np.percentile(values, np.arange(0, 101, 100 / BANDS))
    for band, item in enumerate(first):
        context = item.context
        assert edges[band] <= context.value <= edges[band + 1]
        assert context.token == tokens[context.position] and context.value == values[context.position]
        assert context.before == " ".join(tokens[context.position - CONTEXT_BEFORE : context.position])
        assert context.after == " ".join(tokens[context.position + 1 : context.position + 1 + CONTEXT_AFTER])


def test_band_contexts_rank_ties_so_that_every_band_has_a_context() -> None:
    values = np.zeros(1000, dtype=np.float32)
    values[-50:] = 1.0  # 95% of values tie at zero, as a unit at rest
    found = band_contexts(["w"] * 1000, values, np.random.default_rng(0))
    assert len(found) == BANDS
    assert [item.context.value for item in found[:9]] == [0.0] * 9
    assert found[-1].high == 1.0 and found[-1].low == 0.0


def test_feature_spans_cover_exactly_the_flagged_positions() -> None:
    flags = np.random.default_rng(3).random(300) < 0.3
    spans = feature_spans(flags, start=1000)
    covered = {t for span in spans for t in range(int(span["start"] + 0.5), int(span["end"] + 0.5))}
    assert covered == {1000 + t for t in range(300) if flags[t]}
    runs = sum(1 for t in range(300) if flags[t] and (t == 0 or not flags[t - 1]))  # naive count
    assert len(spans) == runs


def test_trace_window_centres_on_the_strongest_labelled_position() -> None:
    values = np.linspace(0, 1, 5000).astype(np.float32)  # highest at the end
    flags = np.zeros(5000, dtype=bool)
    flags[1000:1010] = True
    start, stop = trace_window(values, flags, high=True)
    assert stop - start == TRACE_TOKENS and start <= 1009 < stop
    assert trace_window(values, None, high=True) == (5000 - TRACE_TOKENS, 5000)
    assert trace_window(values, flags, high=False)[0] <= 1000


@pytest.mark.parametrize("shaded", [True, False])
def test_the_pages_trace_spec_is_the_validated_chart(shaded: bool) -> None:
    """The page fills a cached structure with each passage; it must equal the chart builder's
    own spec, validated against the Vega-Lite schema."""
    points = [{"position": t, "value": 0.5 - t / 20, "token": f"</script>{t}"} for t in range(20)]
    spans = [{"start": 2.5, "end": 6.5, "feature": "in_quotes"}] if shaded else []
    chart = activation_trace_chart(points, spans, "L1-h unit 3", "in_quotes").to_dict()
    chart.pop("$schema")
    assert trace_spec(points, spans, "L1-h unit 3", "in_quotes") == chart


@pytest.fixture(scope="module")
def site(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dynamics-site") / "site"
    assert main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                 "--quiet", "--no-clusters", "--no-images", "--top-neurons", "3"]) == 0
    return out


@pytest.fixture(scope="module")
def fresh(tiny_model: Path, tiny_corpus: Path) -> Capture:
    vocabulary = load_vocabulary(tiny_corpus)
    text = tokenize(tiny_corpus / "test.txt", vocabulary)
    return capture(load_checkpoint(tiny_model).model, text.ids, text.tokens, vocabulary.words)


def test_unit_page_lists_correlated_units_as_corrcoef_ranks_them(site: Path,
                                                                 fresh: Capture) -> None:
    keys = fresh.keys
    everything = np.concatenate([fresh.states[k] for k in keys], axis=1)  # (T, all units)
    names = [(f"L{k[0]}-{k[1]}", u) for k in keys for u in range(fresh.states[k].shape[1])]
    reference = np.corrcoef(everything, rowvar=False)
    neurons = pd.read_csv(site / "data" / "neurons.csv")
    pages = sorted((site / "neuron").glob("*.html"))
    assert pages
    for page in pages[:4]:
        name, unit = page.stem[:4], int(page.stem[5:])
        text = page.read_text(encoding="utf-8")
        row = reference[names.index((name, unit))].copy()
        row[names.index((name, unit))] = np.nan
        best = [names[j] for j in np.argsort(-np.nan_to_num(row, nan=-2))[:5] if row[j] > 0]
        shown = re.findall(r"<li>(?:<a [^>]+>)?(L\d-[hc]) unit (\d+)(?:</a>)?: r = \+", text)
        assert [(n, int(u)) for n, u in shown] == best
        for href, *_ in LINK.findall(text):
            assert (page.parent / href).resolve().is_file()  # each link opens an existing page
        csv_row = neurons[(neurons.layer == int(name[1])) & (neurons.state == name[3])
                          & (neurons.neuron == unit)].iloc[0]
        assert csv_row.top_correlated == f"{best[0][0]}-{best[0][1]:04d}"
        assert abs(csv_row.top_correlated_r - np.nanmax(row)) < 1e-4


def test_unit_page_trace_shows_the_passage_tokens(site: Path, fresh: Capture) -> None:
    page = sorted((site / "neuron").glob("L2-h-*.html"))[0]
    specs = dict(SPEC.findall(page.read_text(encoding="utf-8")))
    trace = json.loads(specs["trace"])
    columns = trace["datasets"][TRACE_POINTS][0]
    points = [dict(zip(columns, row)) for row in zip(*columns.values())]
    unit = int(page.stem[5:])
    for point in points:
        assert point["token"] == fresh.tokens[point["position"]]
        assert abs(point["value"] - fresh.states[(2, "h")][point["position"], unit]) < 1e-3
    assert len(points) == min(TRACE_TOKENS, fresh.n_tokens)


def test_gates_page_and_columns(site: Path) -> None:
    html = (site / "gates.html").read_text(encoding="utf-8")
    specs = dict(SPEC.findall(html))
    assert {"saturation-L1", "saturation-L2", "time-constants-L1", "time-constants-L2"} <= set(specs)
    neurons = pd.read_csv(site / "data" / "neurons.csv")
    for gate in "ifo":
        assert neurons[[f"gate_{gate}_left", f"gate_{gate}_right"]].sum(axis=1).le(1).all()
    records = json.loads(specs["saturation-L1"])["data"]["values"]
    layer1 = neurons[(neurons.layer == 1) & (neurons.state == "h")].set_index("neuron")
    for record in records[:50]:
        assert abs(record["left"] - layer1.loc[record["neuron"], f"gate_{record['gate']}_left"]) < 1e-4
    paged = {p.stem for p in (site / "neuron").glob("L1-*.html")}
    for record in records:
        if record["href"]:
            assert Path(record["href"]).stem in paged
