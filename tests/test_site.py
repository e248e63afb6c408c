"""The report site: its pages, its escaping of corpus text, and its atomic replacement."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from expectancy_pages import page_words, site_words, tip_table

from reportgen.errors import ReportgenError
from reportgen.render.atomic import atomic_folder
from reportgen.render.pages import SiteOptions
from reportgen.runs.report import ReportConfig, build_report
from reportgen.training.train import TrainConfig, train

PAYLOAD = "</script><img/src=x/onerror=alert(1)>"  # one token: no white space
ATTRIBUTE_PAYLOAD = '"><svg/onload=alert(2)>'


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model trained on a corpus whose words include markup payloads."""
    data = tmp_path_factory.mktemp("hostile-data")
    line = f"the cat {PAYLOAD} sat on {ATTRIBUTE_PAYLOAD} the mat .\n"
    for name in ("train.txt", "valid.txt", "test.txt"):
        (data / name).write_text(line * 40, encoding="utf-8")
    out = tmp_path_factory.mktemp("hostile-model")
    config = TrainConfig(emsize=8, nhid=8, nlayers=1, epochs=1, batch_size=4, bptt=10, dropout=0.0)
    return data, train(data, out, config, progress=False).checkpoint


@pytest.fixture(scope="module")
def hostile_site(hostile_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data, checkpoint = hostile_model
    out = tmp_path_factory.mktemp("sites") / "hostile"
    return build_report(ReportConfig(checkpoint, out, data=data, quiet=True,
                                     site=SiteOptions(tokens_per_page=150)))


def test_every_page_escapes_corpus_text(hostile_site: Path) -> None:
    pages = sorted(hostile_site.rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<img" not in text and "<svg" not in text, page
        assert text.count("<script") == text.count("</script>"), page
    shown = [word.text for word in page_words(hostile_site / "expectancy.html")]
    assert PAYLOAD in shown and ATTRIBUTE_PAYLOAD in shown
    words = tip_table((hostile_site / "expectancy.html").read_text(encoding="utf-8"), "tips")["words"]
    assert PAYLOAD in words and ATTRIBUTE_PAYLOAD in words  # the tooltips' table reads back as data


def test_long_text_is_paged_and_pages_link_to_each_other(hostile_site: Path) -> None:
    pages = sorted(hostile_site.glob("expectancy*.html"))
    tokens = 40 * 10  # 9 words and <eos> per line, 40 lines
    assert len(pages) == -(-tokens // 150)
    first = (hostile_site / "expectancy.html").read_text(encoding="utf-8")
    for page in pages[1:]:
        assert f'href="{page.name}"' in first
    assert [word.position for word in site_words(hostile_site)] == list(range(tokens))


def test_expectancy_tokens_cuts_the_pages_but_not_the_export(hostile_model, tmp_path: Path) -> None:
    """--expectancy-tokens 250 of 400: pages for tokens 0 to 249 only, the surprising tokens
    among them, a note on the page and the overview, and every token still in tokens.csv.gz."""
    data, checkpoint = hostile_model
    out = build_report(ReportConfig(checkpoint, tmp_path / "cut", data=data, quiet=True,
                                    embed_states=(),
                                    site=SiteOptions(tokens_per_page=100, expectancy_tokens=250,
                                                     images=False)))
    assert [word.position for word in site_words(out)] == list(range(250))
    assert len(list(out.glob("expectancy*.html"))) == 3
    first = (out / "expectancy.html").read_text(encoding="utf-8")
    assert "first 250 tokens of 400" in first
    anchors = {int(n) for n in re.findall(r'href="expectancy(?:-\d+)?\.html#t(\d+)"', first)}
    probs = pd.read_csv(out / "data" / "tokens.csv.gz")["prob_next"]  # the last is empty: NaN
    assert len(probs) == 400
    p = np.append(np.nan, probs.to_numpy()[:-1])  # (400,) p of each token, as the pages colour it
    others = set(range(1, 250)) - anchors
    assert anchors and max(anchors) < 250  # linked tokens lie on the pages
    assert max(p[sorted(anchors)]) <= min(p[sorted(others)]) + 1e-6  # and are the least expected
    overview = html.unescape((out / "index.html").read_text(encoding="utf-8"))
    assert "shows the text's first 250 tokens of 400" in overview


def test_tooltips_hold_probability_and_top_predictions(hostile_site: Path) -> None:
    titles = [word.tip for word in page_words(hostile_site / "expectancy.html")]
    assert titles[0].endswith("first token, not predicted")
    probability = float(re.search(r"p = ([0-9.e+-]+)", titles[1]).group(1))
    assert 0.0 <= probability <= 1.0
    assert titles[1].count(",") == 4  # five guesses


def test_site_is_self_contained(hostile_site: Path) -> None:
    assert (hostile_site / ".nojekyll").exists()
    assert (hostile_site / "assets" / "vega.js").stat().st_size > 100_000
    for page in hostile_site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, page
        for href in re.findall(r'(?:href|src)="([^"]+)"', text):
            path, _, anchor = href.partition("#")
            target = (page.parent / path).resolve() if path else page
            assert target.exists(), (page, href)
            if anchor:
                assert f'id="{anchor}"' in target.read_text(encoding="utf-8"), (page, href)
    report = json.loads((hostile_site / "data" / "report.json").read_text(encoding="utf-8"))
    assert report["model"]["n_tokens"] == 400 and "capture" in report["timings_seconds"]


def test_overview_names_the_model_and_its_perplexity(hostile_site: Path) -> None:
    report = json.loads((hostile_site / "data" / "report.json").read_text(encoding="utf-8"))
    index = (hostile_site / "index.html").read_text(encoding="utf-8")
    tokens = 40 * 10  # 9 words and <eos> per line, 40 lines
    perplexity = round(report["model"]["perplexity"], 2)
    assert (f"A 1-layer LSTM with 8 units per layer, read on <code>test.txt</code>: {tokens} "
            f"tokens, perplexity <strong>{perplexity}</strong>.") in index
    assert f"<tr><th>tokens analysed</th><td>{tokens}</td></tr>" in index
    assert f"<tr><th>perplexity</th><td>{perplexity}</td></tr>" in index


def test_failed_render_keeps_the_earlier_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with atomic_folder(out) as folder:
        (folder / "index.html").write_text("first", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as folder:
            (folder / "index.html").write_text("half", encoding="utf-8")
            raise RuntimeError("disk full")
    assert (out / "index.html").read_text(encoding="utf-8") == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_refuses_to_replace_a_folder_that_is_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("x", encoding="utf-8")
    with pytest.raises(ReportgenError, match="not a reportgen report"):
        with atomic_folder(tmp_path / "thesis"):
            pass
    assert (tmp_path / "thesis" / "chapter1.tex").exists()


def test_tokens_are_isolated_from_bidirectional_controls(hostile_site: Path) -> None:
    """A right-to-left override in a token must not mirror the rest of a heatmap: each token
    span, and each cell of tokens, is a bidi isolate."""
    css = (hostile_site / "assets" / "style.css").read_text(encoding="utf-8")
    rule = next(line for line in css.splitlines() if "unicode-bidi: isolate" in line)
    assert ".heatmap > span" in rule and "table.contexts td" in rule and "bdi" in rule
    page = (hostile_site / "expectancy.html").read_text(encoding="utf-8")
    assert '<div class="heatmap"' in page and '<span style="background:' in page
