"""Hostile text: a corpus made of classic script-injection and template payloads, rendered into a
report, then opened in chromium. None of them may run (no global set, no dialog, no element of
theirs in the page) and each must be shown as the text it is, in the heatmaps and their tooltips,
the cluster tables, the neuron pages' contexts, a chart's tooltip and the SVG figures.

Tokens are whitespace-split, as pytorch/examples' `data.Corpus` splits them, and Python's
`str.split` also splits on U+2028 and U+2029. A token holding one can therefore reach a report
only through the API, so two placeholder words are renamed after tokenisation, as a notebook
user could rename them, before the pipeline's own stages run.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from browsertools import PageCheck, check_page, check_site, checking_context, chromium

from reportgen.analysis.clustering import TOP_WORDS
from reportgen.analysis.embedding import EmbeddingOptions
from reportgen.inputs.corpus import EOS, Vocabulary
from reportgen.inputs.load import load_inputs
from reportgen.render.images import XML_FORBIDDEN
from reportgen.render.pages import SiteOptions
from reportgen.render.site import write_site
from reportgen.runs.report import ReportConfig, analyse
from reportgen.training.train import TrainConfig, train

PAYLOADS = [
    "</script><script>window.__x=1</script>",
    "<img/src=x/onerror=window.__x=2>",
    '"><svg/onload=window.__x=3>',
    "{{7*7}}",
    "javascript:window.__x=4",
    "<!--",
    "]]>",
    "'onmouseover='window.__x=5",
    "%3Cscript%3E",
    "&lt;b&gt;",
    "${alert(1)}",
    "line\u2028separator",
    "paragraph\u2029separator",
    "\x01bell\x08",  # control characters, which XML forbids in the SVG figures
    "\u202eevil",  # a right-to-left override
]
RENAMED = {"LINESEP": "line\u2028separator", "PARASEP": "paragraph\u2029separator"}
FILLERS = ["the", "cat", "sat", "."]
TINY = TrainConfig(emsize=8, nhid=12, nlayers=1, epochs=1, batch_size=4, bptt=10, dropout=0.0,
                   seed=1)

PROBES = {
    "x": "() => typeof window.__x",
    # Elements no page of ours has: an img, a frame, an svg that is not a chart's, or a script
    # that is neither a spec nor one of the two assets.
    "foreign": """() => {
      var ours = s => s.type === "application/json" || /assets\\/(vega|report)\\.js$/.test(s.src);
      var tags = "img, iframe, object, embed, main svg:not(.marks)";
      return document.querySelectorAll(tags).length
        + Array.from(document.scripts).filter(s => !ours(s)).length;
    }""",
    # Each heatmap word's position, text, and the tooltip report.js shows when it is hovered.
    "spans": """() => Array.from(document.querySelectorAll(".heatmap")).flatMap(box =>
      Array.from(box.querySelectorAll(":scope > span")).map((s, i) => {
        s.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
        var position = s.dataset.pos ? Number(s.dataset.pos) : Number(box.dataset.start) + i;
        return [position, s.textContent, document.getElementById("reportgen-tip").textContent];
      }))""",
    "words": """() => Array.from(document.querySelectorAll("table.cluster-table bdi")).map(
                      s => s.textContent)""",
    "contexts": """() => Array.from(document.querySelectorAll(
                      "table.contexts:not(.typical) tbody tr")).map(
                      r => Array.from(r.cells).map(c => c.textContent))""",
    "typical": """() => Array.from(document.querySelectorAll("table.typical tbody tr")).map(
                      r => Array.from(r.cells).map(c => c.textContent))""",
}
SPEC = re.compile(r'<script type="application/json" id="spec-([^"]+)">(.*?)</script>', re.S)
TOOLTIP_TOKEN = """() => {
  var rows = document.querySelectorAll("#vg-tooltip-element.visible tr");
  var row = Array.from(rows).find(r => r.cells[0].textContent === "token");
  return row ? row.cells[1].textContent : null;
}"""
POINT_OF = """(token) => Array.from(document.querySelectorAll("#chart-clusters g.role-mark path"))
  .findIndex(p => (p.getAttribute("aria-label") || "").includes("token: " + token + ";"))"""


def file_word(payload: str) -> str:
    """The word the corpus file holds for a payload: a placeholder when it must be renamed."""
    return next((word for word, name in RENAMED.items() if name == payload), payload)


def hostile_lines(count: int, rng: random.Random) -> str:
    words = [file_word(payload) for payload in PAYLOADS] + FILLERS
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))) + "\n"
                   for _ in range(count))


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("hostile-data")
    rng = random.Random(6)
    for name, count in (("train.txt", 300), ("valid.txt", 30), ("test.txt", 40)):
        (data / name).write_text(hostile_lines(count, rng), encoding="utf-8")
    checkpoint = train(data, tmp_path_factory.mktemp("hostile-model"), TINY,
                       progress=False).checkpoint
    out = tmp_path_factory.mktemp("hostile-site") / "report"
    config = ReportConfig(checkpoint, out, data=data, quiet=True, embed_states=((1, "h"),),
                          embedding=EmbeddingOptions(max_points=1000, n_clusters=4,
                                                     min_cluster_size=3), threads=1,
                          site=SiteOptions(tokens_per_page=200, top_neurons=2))
    inputs = load_inputs(config)
    words = [RENAMED.get(word, word) for word in inputs.vocabulary.words]
    tokens = [RENAMED.get(token, token) for token in inputs.text.tokens]
    inputs = replace(inputs, vocabulary=Vocabulary.from_words(words),
                     text=replace(inputs.text, tokens=tokens))
    write_site(analyse(config, inputs, {}), out, config.site)
    return out


@pytest.fixture(scope="module")
def tokens(hostile_site: Path) -> list[str]:
    frame = pd.read_csv(hostile_site / "data" / "tokens.csv.gz", keep_default_na=False)
    return frame["token"].tolist()


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def checks(hostile_site: Path, browser: Any) -> dict[str, PageCheck]:
    return {check.path: check for check in check_site(browser, hostile_site, PROBES)}


def shown(token: str) -> str:
    return "⏎" if token == EOS else token


def test_the_text_holds_every_payload(tokens: list[str]) -> None:
    assert set(PAYLOADS) <= set(tokens)


@pytest.mark.browser
def test_no_payload_runs(checks: dict[str, PageCheck]) -> None:
    assert {"index.html", "expectancy.html", "neurons.html", "clusters.html"} <= set(checks)
    for path, check in checks.items():
        assert check.problems() == [], path  # no dialog, no console or page error, no request
        assert check.probed["x"] == "undefined", path
        assert check.probed["foreign"] == 0, path


@pytest.mark.browser
def test_heatmaps_and_their_tooltips_show_each_token_as_text(checks: dict[str, PageCheck],
                                                             tokens: list[str]) -> None:
    seen: dict[int, str] = {}
    for path, check in checks.items():
        for position, text, title in check.probed["spans"]:
            assert text == shown(tokens[position]), (path, position)
            if path.startswith("expectancy"):
                assert title.startswith(f"{tokens[position]}: "), (path, position)
                seen[position] = text
            else:  # a neuron page's excerpt: the unit's value at that word
                assert re.fullmatch(r"[+-]\d+\.\d{4}", title), (path, position)
    assert sorted(seen) == list(range(len(tokens)))  # the expectancy pages show the whole text
    assert set(PAYLOADS) <= set(seen.values())


@pytest.mark.browser
def test_cluster_tables_show_each_top_word_as_text(hostile_site: Path,
                                                   checks: dict[str, PageCheck]) -> None:
    clusters = pd.read_csv(hostile_site / "data" / "clusters_by_cut.csv", keep_default_na=False)
    expected = [item.rsplit(":", 1)[0] for words in clusters["words"]
                for item in words.split(" ")[:TOP_WORDS]]
    shown_words = checks["clusters.html"].probed["words"]
    assert Counter(shown_words) == Counter(expected)
    assert set(PAYLOADS) <= set(shown_words)


@pytest.mark.browser
def test_neuron_contexts_show_each_token_as_text(hostile_site: Path, checks: dict[str, PageCheck],
                                                 tokens: list[str]) -> None:
    neuron_pages = [check for path, check in checks.items() if path.startswith("neuron/")]
    neurons = pd.read_csv(hostile_site / "data" / "neurons.csv")
    paged = neurons[neurons["near_zero"] == 0].groupby(["layer", "state"]).size().clip(upper=2)
    concepts = (hostile_site / "concepts.html").read_text(encoding="utf-8")
    listed = set(re.findall(r'href="(neuron/[^"]+)"', concepts))
    # the top two of each layer and state (near-zero ones left out), and the concepts page's
    assert {check.path for check in neuron_pages} >= listed
    assert paged.sum() <= len(neuron_pages) <= paged.sum() + len(listed)
    found = set()
    for check in neuron_pages:
        for value, position, before, token, after in check.probed["contexts"]:
            assert token == tokens[int(position.replace(",", ""))]
            found.add(token)
    assert found & set(PAYLOADS)
    sampled = set()
    for check in neuron_pages:  # the typical contexts, one from each tenth of the values
        for band, value, position, before, token, after in check.probed["typical"]:
            assert token == tokens[int(position.replace(",", ""))]
            sampled.add(token)
    assert sampled & set(PAYLOADS)


def tooltip_on_hover(page: Any, point: Any) -> str | None:
    """The token the chart's tooltip shows once the pointer is on `point`, or None if none
    shows within a second (the point may lie under another mark)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: PLC0415

    page.mouse.move(0, 0)
    point.hover(force=True)
    try:
        page.wait_for_function(TOOLTIP_TOKEN, timeout=1000)
    except PlaywrightTimeout:
        return None
    return page.evaluate(TOOLTIP_TOKEN)


@pytest.mark.browser
def test_a_chart_tooltip_shows_payloads_as_text(hostile_site: Path, browser: Any) -> None:
    """Hover the t-SNE points of payload tokens: the tooltip shows each, and nothing runs."""
    context = checking_context(browser)
    page = context.new_page()
    page.set_viewport_size({"width": 1600, "height": 1400})  # the chart whole, none under the bar
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto((hostile_site / "clusters.html").as_uri())
    page.wait_for_function("() => document.querySelector('#chart-clusters').dataset.rendered")
    points = page.locator("#chart-clusters g.role-mark path")
    tooltips = []
    for payload in PAYLOADS:
        index = page.evaluate(POINT_OF, payload)
        assert index >= 0, payload  # every position is mapped: max_points exceeds the text
        tooltips.append(tooltip_on_hover(page, points.nth(index)))
    assert page.evaluate("() => typeof window.__x") == "undefined"
    assert page.evaluate("() => document.querySelectorAll('#vg-tooltip-element img, "
                         "#vg-tooltip-element svg, #vg-tooltip-element script').length") == 0
    context.close()
    assert dialogs == []
    # A hovered point may lie under another mark; on this map at most two do.
    assert sum(tooltip == payload for tooltip, payload in zip(tooltips, PAYLOADS)) >= len(
        PAYLOADS) - 2
    assert set(tooltips) - {None} <= set(PAYLOADS) | set(FILLERS) | {EOS}


@pytest.mark.browser
def test_the_checks_catch_a_payload_left_unescaped(hostile_site: Path, browser: Any,
                                                   tmp_path: Path) -> None:
    """The same checks on a copy of a page where two payloads went in as markup: they run."""
    broken = tmp_path / "broken"
    shutil.copytree(hostile_site, broken)
    page = broken / "expectancy.html"
    page.write_text(page.read_text(encoding="utf-8").replace(
        "</main>", "<img src=x onerror=window.__x=2><svg/onload=alert(1)></main>"),
        encoding="utf-8")
    context = checking_context(browser)
    check = check_page(context, broken, "expectancy.html", PROBES)
    context.close()
    assert check.probed["x"] == "number"
    assert check.probed["foreign"] == 2
    assert check.dialogs == ["alert: 1"]
    assert "expectancy.html: dialog opened: alert: 1" in check.problems()


def test_svg_figures_hold_payloads_as_text(hostile_site: Path) -> None:
    root = ET.parse(hostile_site / "img" / "expectancy-excerpt.svg").getroot()
    texts = {element.text for element in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {XML_FORBIDDEN.sub("\ufffd", payload) for payload in PAYLOADS} <= texts
    assert "\ufffdbell\ufffd" in texts  # XML cannot hold a control character, even escaped
    for chart in (hostile_site / "img").glob("*.svg"):  # Vega's charts, with tokens in labels
        ET.parse(chart)


RLO_ORDER = """() => {
  // For each span holding a right-to-left override, is the next span on its line still to its
  // right? Without isolation the override runs to the end of the paragraph and mirrors them.
  const spans = Array.from(document.querySelectorAll(".heatmap > span"));
  const results = [];
  spans.forEach((span, i) => {
    const next = spans[i + 1];
    if (!span.textContent.includes("\\u202e") || !next) return;
    const a = span.getBoundingClientRect(), b = next.getBoundingClientRect();
    if (Math.abs(a.top - b.top) < 2) results.push(b.left >= a.right - 1);
  });
  return results;
}"""


@pytest.mark.browser
def test_a_right_to_left_override_does_not_mirror_the_tokens_after_it(hostile_site: Path,
                                                                      browser: Any) -> None:
    context = checking_context(browser)
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    order = []
    for path in sorted(hostile_site.glob("expectancy*.html")):
        page.goto(path.as_uri())
        order += page.evaluate(RLO_ORDER)
    context.close()
    assert order and all(order)


@pytest.mark.browser
def test_a_unit_trace_tooltip_shows_payloads_as_text(hostile_site: Path, browser: Any,
                                                     tokens: list[str]) -> None:
    """Hover the points of a unit page's activation trace that hold payloads: each tooltip
    shows its token as text, and nothing runs."""
    page_path = sorted((hostile_site / "neuron").glob("*.html"))[0]
    spec = json.loads(dict(SPEC.findall(page_path.read_text(encoding="utf-8")))["trace"])
    passage = spec["datasets"]["trace_points"][0]["token"]
    hostile = [index for index, token in enumerate(passage) if token in PAYLOADS][:6]
    assert hostile, "the trace's passage should hold payloads"
    context = checking_context(browser)
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1400})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(page_path.as_uri())
    page.wait_for_function("() => document.querySelector('#chart-trace').dataset.rendered")
    page.locator("#chart-trace").scroll_into_view_if_needed()
    points = page.locator("#chart-trace g.mark-symbol path")
    shown = [tooltip_on_hover(page, points.nth(index)) for index in hostile]
    assert page.evaluate("() => typeof window.__x") == "undefined"
    context.close()
    assert dialogs == []
    assert sum(text == passage[index] for text, index in zip(shown, hostile)) >= len(hostile) - 1
