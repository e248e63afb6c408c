"""Figures for papers under img/: each named chart as SVG and PNG, drawn from the page's own spec,
and heatmap excerpts as SVG that show what the page's spans show; `--no-images` skips them."""

from __future__ import annotations

import html
import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import vl_convert
from expectancy_pages import page_words

from reportgen.analysis.number_units import PROFILED_UNITS
from reportgen.cli.main import build_parser, main
from reportgen.render.heatmap import TokenCell
from reportgen.render.images import (
    FIGURE_WIDTH,
    PNG_SCALE,
    figure_spec,
    layout_heatmap,
    render_heatmap_svg,
)
from reportgen.render.site import make_environment

SVG = "{http://www.w3.org/2000/svg}"
EXCERPT_TOKENS = 200
SPEC = re.compile(r'<script type="application/json" id="spec-([^"]+)">(.*?)</script>', re.S)
SPAN = re.compile(r'<span(?: class="([^"]*)")? style="background:([^"]+)" data-tip="([^"]*)">'
                  r'([^<]*)</span>')
EXCERPT = re.compile(r'<div class="heatmap excerpt"[^>]*data-start="(\d+)"[^>]*>(.*?)</div>', re.S)


def report_args(checkpoint: Path, data: Path, out: Path, *flags: str) -> list[str]:
    return [str(checkpoint), "--data", str(data), "--out", str(out), "--max-tokens", "700",
            "--top-neurons", "2", "--quiet", *flags]


@pytest.fixture(scope="module")
def site(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("images") / "report"
    assert main(["report", *report_args(tiny_model, tiny_corpus, out, "--maps", "L1-h",
                                        "--all-figures")]) == 0
    return out


def test_by_default_only_the_main_charts_have_figures(tiny_model: Path, tiny_corpus: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", *report_args(tiny_model, tiny_corpus, out, "--maps", "L1-h")]) == 0
    stems = {path.stem for path in (out / "img").iterdir()}
    names = {"expectancy-excerpt", "clusters-L1-h-ward_pca"} | {
        f"L{layer}-{state}-{kind}" for layer in (1, 2) for state in "hc"
        for kind in ("average", "kl")} | {
        f"L{layer}-{kind}" for layer in (1, 2) for kind in ("gate-saturation", "time-constants")}
    agreement = stems - names  # the agreement page's: accuracies, the finder's screen, profiles
    assert names <= stems and {"agreement-0", "number-units-screen"} <= agreement
    assert all(stem.startswith(("agreement-", "number-unit")) for stem in agreement), agreement


def page_specs(page: Path) -> dict[str, dict]:
    return {name: json.loads(text) for name, text in SPEC.findall(page.read_text(encoding="utf-8"))}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def svg_size(root: ET.Element) -> tuple[float, float]:
    return float(root.get("width")), float(root.get("height"))


def chart_figures(site: Path) -> set[str]:
    return {path.stem for path in (site / "img").glob("*.png")} - {"expectancy-excerpt"}


def top_pages(site: Path) -> set[str]:
    """The neuron pages that neurons.html's ranking tables link: the top units by KL."""
    source = (site / "neurons.html").read_text(encoding="utf-8")
    tables = re.findall(r'<table class="data sortable ranking".*?</table>', source, re.S)
    return {link for table in tables for link in re.findall(r'href="(neuron/[^"]+)"', table)}


def test_every_chart_of_every_page_has_its_figure_drawn_from_the_page_spec(site: Path) -> None:
    """Each chart of neurons.html, clusters.html and the top units' pages, converted here from
    its page's spec, is exactly one of the SVGs under img/, and each of those SVGs is some
    page's chart. The pages of the concepts page's other units have no figures."""
    figures = {stem: (site / "img" / f"{stem}.svg").read_text(encoding="utf-8")
               for stem in chart_figures(site)}
    top = top_pages(site)
    assert len(top) == 2 * 4
    charts = {f"{page.relative_to(site)}#{name}": spec
              for page in sorted(site.rglob("*.html")) for name, spec in page_specs(page).items()
              if not page.parent.name == "neuron" or f"neuron/{page.name}" in top}
    # neurons.html: average and KL for 4 states; 8 neuron pages: histogram, AUROC, trace and
    # ablation, and the 2 of L2-h their output weights; clusters; gates.html: saturation and
    # time constants for 2 layers; agreement.html: accuracies, the finder's screen and the
    # profiles of its top units
    agreement = [name for name in charts if name.startswith("agreement.html#")]
    assert len(charts) - len(agreement) == 8 + 8 * 4 + 2 + 1 + 4
    assert len(agreement) == 2 + PROFILED_UNITS
    matched = set()
    for name, spec in charts.items():
        svg = vl_convert.vegalite_to_svg(figure_spec(spec))
        labels = re.findall(r'aria-label="([^"]*)"', svg)  # titles' (a facet's each), no mark's
        assert all(label.startswith("Title text") for label in labels), (name, labels)
        found = [stem for stem, text in figures.items() if text == svg]
        assert len(found) == 1, name
        matched.update(found)
    assert matched == set(figures)
    assert {"L1-h-average", "L2-c-kl", "clusters-L1-h-ward_pca"} <= matched
    assert sum(stem.endswith(("-histogram", "-auroc")) for stem in matched) == 16
    assert sum(stem.endswith("-trace") for stem in matched) == 8
    others = {page.stem for page in (site / "neuron").glob("*.html")} - {
        link.removeprefix("neuron/").removesuffix(".html") for link in top}
    assert others, "the concepts page should list units beyond the top ones by KL"
    assert not [stem for stem in figures if stem.rsplit("-", 1)[0] in others]


def test_each_png_is_its_svg_at_the_print_scale(site: Path) -> None:
    stems = chart_figures(site) | {"expectancy-excerpt"}
    for stem in stems:
        width, height = svg_size(ET.parse(site / "img" / f"{stem}.svg").getroot())
        assert png_size(site / "img" / f"{stem}.png") == (round(width * PNG_SCALE),
                                                          round(height * PNG_SCALE)), stem


def figure_tokens(path: Path) -> list[dict]:
    """The token boxes of a heatmap figure, parsed as XML."""
    tokens = []
    for group in ET.parse(path).getroot().iter(f"{SVG}g"):
        rect, text = group.find(f"{SVG}rect"), group.find(f"{SVG}text")
        tokens.append({
            "text": text.text, "title": group.find(f"{SVG}title").text, "fill": rect.get("fill"),
            "x": float(rect.get("x")), "y": float(rect.get("y")),
            "width": float(rect.get("width")), "centre": "centre" in group.get("class").split(),
        })
    return tokens


def page_spans(start: int, fragment: str) -> list[dict]:
    """An excerpt's words: text, tooltip, colour, position (from the excerpt's start), centre."""
    return [{"text": html.unescape(text), "title": html.unescape(title), "fill": color,
             "position": start + index, "centre": "centre" in classes.split()}
            for index, (classes, color, title, text) in enumerate(SPAN.findall(fragment))]


def assert_laid_out_in_lines(tokens: list[dict]) -> None:
    """Boxes stay inside the figure, go left to right in a line, and lines go down."""
    for before, after in zip(tokens, tokens[1:]):
        assert after["y"] > before["y"] or after["x"] >= before["x"] + before["width"]
        assert after["y"] >= before["y"]
    assert all(0 < token["x"] and token["x"] + token["width"] < FIGURE_WIDTH for token in tokens)


def test_expectancy_excerpt_shows_the_first_tokens_as_the_page_does(site: Path) -> None:
    words = page_words(site / "expectancy.html")[:EXCERPT_TOKENS]
    tokens = figure_tokens(site / "img" / "expectancy-excerpt.svg")
    assert [word.position for word in words] == list(range(EXCERPT_TOKENS))
    assert [(t["text"], t["title"], t["fill"]) for t in tokens] == [
        (word.text, word.tip, word.colour) for word in words]
    assert_laid_out_in_lines(tokens)


def test_each_top_neuron_page_has_its_highest_excerpt_as_a_figure(site: Path) -> None:
    pages = sorted(site / link for link in top_pages(site))
    assert len(pages) == 2 * 4
    for page in pages:
        source = page.read_text(encoding="utf-8")
        start, first = EXCERPT.search(source).groups()
        spans = page_spans(int(start), first)
        tokens = figure_tokens(site / "img" / f"{page.stem}-excerpt.svg")
        assert [(t["text"], t["title"], t["fill"]) for t in tokens] == [
            (s["text"], s["title"], s["fill"]) for s in spans]
        centres = [span["position"] for span in spans if span["centre"]]
        outlined = [span["position"] for span, token in zip(spans, tokens) if token["centre"]]
        assert len(centres) == 1 and outlined == centres, page.name
        assert_laid_out_in_lines(tokens)


def test_a_figure_keeps_any_token_as_text_and_stays_valid_xml() -> None:
    texts = ["<b>&amp;", "\x01bell\x08", "a" * 400, "漢字漢字", "<eos>"]
    cells = [TokenCell(text, "#2166ac", f"{text}: tip", i, text == "<eos>", True)
             for i, text in enumerate(texts)]
    svg = render_heatmap_svg(make_environment(), layout_heatmap(cells, "caption <i>"))
    root = ET.fromstring(svg)  # raises on unescaped markup or characters XML forbids
    shown = [group.find(f"{SVG}text").text for group in root.iter(f"{SVG}g")]
    assert shown[0] == "<b>&amp;"
    assert shown[1] == "\ufffdbell\ufffd"
    assert shown[2].endswith("…") and len(shown[2]) < 400
    assert shown[3:] == ["漢字漢字", "⏎"]
    assert root.find(f"{SVG}title").text == "caption <i>"
    boxes = [group.find(f"{SVG}rect") for group in root.iter(f"{SVG}g")]
    assert all(float(box.get("x")) + float(box.get("width")) < FIGURE_WIDTH for box in boxes)
    # Four wide characters take the room of eight narrow ones, as in a monospace font.
    assert float(boxes[3].get("width")) == float(boxes[0].get("width"))


def test_no_images_skips_the_figures(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", *report_args(tiny_model, tiny_corpus, out, "--no-images",
                                        "--no-clusters")]) == 0
    assert (out / "neurons.html").is_file() and not (out / "img").exists()
    summary = json.loads((out / "data" / "report.json").read_text(encoding="utf-8"))
    assert summary["options"]["site"]["images"] is False
    assert "img/" not in (out / "index.html").read_text(encoding="utf-8")
    assert build_parser().parse_args(["demo", "--no-images"]).no_images is True
