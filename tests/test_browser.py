"""The report in a real browser: every page of a small site opened from file:// in Debian's
chromium, with no error, no request outside file://, every chart drawn and every link whole, in a
1400 px desktop window and on a 420 px touch screen, where no page may scroll sideways; tooltips
shown on tap, hover and keyboard focus, as text; and proof that the same check fails on a site
broken on purpose.

One small site is built for the module (a tiny model, 1,500 tokens, 300 t-SNE points, two neuron
pages per layer and state, the text in two pages); the browser opens each page once. The last
test does the same on the demo report (slow: it trains the demo model).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import pytest
from browsertools import (
    DESKTOP,
    PHONE,
    PageCheck,
    check_page,
    check_site,
    checking_context,
    chromium,
    site_pages,
)
from expectancy_pages import page_words, tip_table

from reportgen.analysis.embedding import EmbeddingOptions
from reportgen.charts import CUT_PARAM
from reportgen.render.pages import SiteOptions
from reportgen.runs.report import ReportConfig, build_report

MAX_TOKENS = 1500
MAX_POINTS = 300
TOP_NEURONS = 2
TOKENS_PER_PAGE = 1000  # two expectancy pages, so the pager's links are checked too
MAPS = ((1, "h"), (2, "c"))
PAGE_LIMIT = 5 * 1024 * 1024  # bytes: browsers of report readers struggle beyond tens of MB
SPEC = re.compile(r'(<script type="application/json" id="spec-([^"]+)">)(.*?)(</script>)', re.S)
CHART_DIV = re.compile(r'<div class="chart" id="([^"]+)"')
HREF = re.compile(r'(?:href|src)="([^"#][^"]*)"')


def tiny_site_config(checkpoint: Path, data: Path, out: Path) -> ReportConfig:
    """`reportgen report --max-tokens 1500 --max-points 300 --top-neurons 2`, on one thread."""
    return ReportConfig(
        checkpoint, out, data=data, quiet=True, max_tokens=MAX_TOKENS,
        embedding=EmbeddingOptions(max_points=MAX_POINTS), embed_states=MAPS, threads=1,
        site=SiteOptions(tokens_per_page=TOKENS_PER_PAGE, top_neurons=TOP_NEURONS),
    )


@pytest.fixture(scope="module")
def site(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser-site") / "report"
    return build_report(tiny_site_config(tiny_model, tiny_corpus, out))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def checks(site: Path, browser: Any) -> dict[str, PageCheck]:
    return {check.path: check for check in check_site(browser, site, viewport=DESKTOP)}


@pytest.fixture(scope="module")
def phone_checks(site: Path, browser: Any) -> dict[str, PageCheck]:
    return {check.path: check
            for check in check_site(browser, site, viewport=PHONE, touch=True)}


def chart_ids_in_source(page: Path) -> list[str]:
    return CHART_DIV.findall(page.read_text(encoding="utf-8"))


@pytest.mark.browser
def test_every_page_opens_with_no_error_request_or_broken_link(
        site: Path, checks: dict[str, PageCheck]) -> None:
    expected = {"index.html", "expectancy.html", "expectancy-2.html", "neurons.html",
                "concepts.html", "clusters.html"}
    assert expected <= set(checks)
    # the top units by KL, and the concepts page's other units
    assert sum(path.startswith("neuron/") for path in checks) > TOP_NEURONS * 4
    assert set(checks) == set(site_pages(site))
    problems = [problem for check in checks.values() for problem in check.problems()]
    assert problems == []
    assert {check.window_width for check in checks.values()} == {DESKTOP["width"]}


@pytest.mark.browser
def test_every_page_fits_a_420_px_touch_screen(site: Path,
                                               phone_checks: dict[str, PageCheck]) -> None:
    """No page scrolls sideways on a phone: charts and wide tables scroll in their own boxes.
    The window is 420 px wide only if the page asks for the device's width (meta viewport)."""
    assert set(phone_checks) == set(site_pages(site))
    assert {check.window_width for check in phone_checks.values()} == {PHONE["width"]}
    assert {path: check.page_width for path, check in phone_checks.items()
            if check.page_width > PHONE["width"]} == {}
    assert [problem for check in phone_checks.values() for problem in check.problems()] == []


@pytest.mark.browser
def test_every_chart_is_drawn_with_its_marks(site: Path, checks: dict[str, PageCheck]) -> None:
    for path, check in checks.items():
        assert [chart.id for chart in check.charts] == chart_ids_in_source(site / path), path
        for chart in check.charts:
            assert (chart.rendered, chart.element) == ("true", "svg"), (path, chart)
            assert chart.marks > 0, (path, chart)
    neurons = pd.read_csv(site / "data" / "neurons.csv")
    drawn = {chart.id: chart.marks for chart in checks["neurons.html"].charts}
    for (layer, state), rows in neurons.groupby(["layer", "state"]):
        assert drawn[f"chart-kl-L{layer}-{state}"] == len(rows)  # one point per neuron
    assert [chart.marks for chart in checks["clusters.html"].charts] == [MAX_POINTS]


def edit_spec(page: Path, spec_id: str, change: Callable[[dict], None]) -> None:
    """Rewrite one chart's inline spec, escaped as the site escapes it."""
    def replace(match: re.Match) -> str:
        if match.group(2) != spec_id:
            return match.group(0)
        spec = json.loads(match.group(3))
        change(spec)
        text = json.dumps(spec).replace("<", "\\u003c").replace(">", "\\u003e")
        return match.group(1) + text.replace("&", "\\u0026") + match.group(4)

    source = page.read_text(encoding="utf-8")
    edited = SPEC.sub(replace, source)
    assert edited != source, spec_id
    page.write_text(edited, encoding="utf-8")


def break_mark_types(node: Any) -> None:
    """Give every mark of a spec a type Vega-Lite does not know."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "mark" and isinstance(value, dict):
                value["type"] = "no-such-mark"
            elif key == "mark":
                node[key] = "no-such-mark"
            else:
                break_mark_types(value)
    elif isinstance(node, list):
        for item in node:
            break_mark_types(item)


def empty_data(spec: dict) -> None:
    """Drop every data row: the chart still renders, but draws no mark."""
    for name in spec.get("datasets", {}):
        spec["datasets"][name] = []
    if isinstance(spec.get("data"), dict) and "values" in spec["data"]:
        spec["data"]["values"] = []


@pytest.mark.browser
def test_the_check_fails_on_a_site_broken_on_purpose(site: Path, browser: Any,
                                                     tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(site, broken)
    edit_spec(broken / "neurons.html", "average-L1-h", break_mark_types)
    edit_spec(broken / "neurons.html", "kl-L2-c", empty_data)
    removed = sorted((broken / "neuron").glob("L1-h-*.html"))[0]
    removed.unlink()
    index = broken / "index.html"
    index.write_text(index.read_text(encoding="utf-8").replace(
        "</main>", '<img src="https://example.invalid/pixel.png" alt="">'
        '<p class="too-wide" style="width:900px">a line no phone holds</p></main>'),
        encoding="utf-8")
    edit_spec(broken / "clusters.html", "clusters",
              lambda spec: spec.setdefault("usermeta", {}).update(renderer="canvas"))

    context = checking_context(browser)
    neurons = check_page(context, broken, "neurons.html")
    front = check_page(context, broken, "index.html")
    clusters = check_page(context, broken, "clusters.html")
    context.close()
    phone = checking_context(browser, PHONE, touch=True)
    narrow_front = check_page(phone, broken, "index.html")
    narrow_clusters = check_page(phone, broken, "clusters.html")
    phone.close()

    problems = neurons.problems()
    assert "neurons.html: chart chart-average-L1-h: data-rendered='error'" in problems
    assert "neurons.html: chart chart-kl-L2-c: its svg draws no data mark" in problems
    assert any("console error" in problem and "average-L1-h" in problem for problem in problems)
    assert any("broken link" in problem and removed.name in problem for problem in problems)
    assert any("chart data" in problem and removed.name in problem for problem in problems)
    charts_blamed = {chart for problem in problems for chart in re.findall(r"chart (chart-\S+):",
                                                                           problem)}
    assert charts_blamed == {"chart-average-L1-h", "chart-kl-L2-c"}
    assert "index.html: request outside file://: https://example.invalid/pixel.png" in (
        front.problems())
    # The canvas renderer draws the same points, counted from Vega's scene graph.
    assert clusters.problems() == []
    assert [(chart.element, chart.marks) for chart in clusters.charts] == [("canvas", MAX_POINTS)]
    # The 900 px line fits a desktop window but makes the phone's page scroll sideways; the
    # t-SNE map, wider than the phone too, scrolls in its own box.
    assert not any("sideways" in problem for problem in front.problems())
    assert narrow_front.page_width > PHONE["width"]
    assert any("sideways" in problem and "p.too-wide" in problem
               for problem in narrow_front.problems())
    assert narrow_clusters.problems() == []


def open_page(context: Any, page: Path) -> Any:
    tab = context.new_page()
    tab.goto(page.resolve().as_uri())
    return tab


def word_at(tab: Any, position: int) -> Any:
    """The span of the first expectancy page's word at `position`: spans in text order."""
    return tab.locator(f".heatmap > span:nth-of-type({position + 1})")


def tip_shown(tab: Any) -> str | None:
    """The tooltip's text while it is shown, else None."""
    tip = tab.locator("div.tip")
    return tip.text_content() if tip.count() and tip.is_visible() else None


@pytest.mark.browser
def test_a_tapped_word_shows_its_probability_and_the_models_guesses(site: Path,
                                                                   browser: Any) -> None:
    tokens = pd.read_csv(site / "data" / "tokens.csv.gz", keep_default_na=False)
    context = checking_context(browser, PHONE, touch=True)
    tab = open_page(context, site / "expectancy.html")
    assert tip_shown(tab) is None
    words = page_words(site / "expectancy.html")
    position = 300  # a word below the first screen: tap scrolls to it
    word_at(tab, position).tap()
    text = tip_shown(tab)
    assert text == words[position].tip
    token = tokens["token"][position]
    first, second = text.split("\n")
    said = re.fullmatch(rf"{re.escape(token)}: p = ([0-9.e+-]+)", first)
    expected = float(tokens["prob_next"][position - 1])  # a column with blanks: read as text
    assert said and float(said.group(1)) == pytest.approx(expected, abs=6e-5)
    assert second.startswith("expected: ") and len(second.split(", ")) == 5  # five guesses
    box = tab.locator("div.tip").bounding_box()
    assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"]
    assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    word_at(tab, position + 1).tap()
    assert tip_shown(tab).startswith(f"{tokens['token'][position + 1]}: p = ")
    tab.locator("h1").tap()  # anywhere else hides it
    assert tip_shown(tab) is None

    neuron = sorted((site / "neuron").glob("*.html"))[0]
    tab = open_page(context, neuron)
    centre = tab.locator(".heatmap.excerpt > span.centre").first
    centre.tap()
    value = float(tip_shown(tab))
    expected = float(tab.locator("h3.excerpt-title").first.text_content().rsplit(": ", 1)[1])
    assert value == pytest.approx(expected, abs=1e-4)  # the excerpt's title gives the centre's value
    context.close()


@pytest.mark.browser
def test_tooltips_show_on_hover_and_step_with_the_keyboard(site: Path, browser: Any) -> None:
    context = checking_context(browser, DESKTOP)
    tab = open_page(context, site / "expectancy.html")
    words = page_words(site / "expectancy.html")

    def tip_of(position: int) -> str:
        return words[position].tip

    word_at(tab, 5).hover()
    assert tip_shown(tab) == tip_of(5)
    tab.mouse.move(1, 1)
    assert tip_shown(tab) is None
    tab.focus(".heatmap")  # one Tab stop for the whole text
    tab.keyboard.press("ArrowRight")
    assert tip_shown(tab) == tip_of(0)
    tab.keyboard.press("ArrowRight")
    tab.keyboard.press("ArrowRight")
    assert tip_shown(tab) == tip_of(2)
    assert tab.evaluate("document.activeElement.textContent") == words[2].text
    assert tab.evaluate("document.activeElement.getAttribute('aria-describedby')") == (
        tab.locator("div.tip").get_attribute("id"))
    tab.keyboard.press("End")
    assert tip_shown(tab) == tip_of(TOKENS_PER_PAGE - 1)
    tab.keyboard.press("Escape")
    assert tip_shown(tab) is None
    # the spans carry no tabindex in the page: a 2,000-word page stays light
    source = (site / "expectancy.html").read_text(encoding="utf-8")
    assert source.count("tabindex") == 1
    context.close()


@pytest.mark.browser
def test_a_tooltip_shows_markup_as_text(site: Path, browser: Any, tmp_path: Path) -> None:
    """A tip holding a script payload, escaped as the site escapes attributes, shows as text."""
    spoiled = tmp_path / "spoiled"
    shutil.copytree(site, spoiled)
    payload = '<img src=x onerror="window.__x=1"></div><script>window.__x=2</script>'
    page = spoiled / "expectancy.html"
    source = page.read_text(encoding="utf-8")
    table = tip_table(source, "tips")
    table["words"][table["rows"][10][0]] = payload  # as the site writes any word: |tojson
    written = str(jinja2.utils.htmlsafe_json_dumps(table, sort_keys=True, separators=(",", ":")))
    edited = re.sub(r'(<script type="application/json" id="tips">).*?(</script>)',
                    lambda match: match.group(1) + written + match.group(2), source, flags=re.S)
    assert edited != source and "<img" not in edited
    page.write_text(edited, encoding="utf-8")
    context = checking_context(browser, PHONE, touch=True)
    tab = open_page(context, page)
    word_at(tab, 10).tap()
    assert tip_shown(tab).startswith(payload + ": p = ")
    assert tab.evaluate("document.querySelector('div.tip').children.length") == 0
    assert tab.evaluate("document.querySelectorAll('main img, script:not([src]):not([type])')"
                        ".length") == 0
    assert tab.evaluate("typeof window.__x") == "undefined"
    context.close()


def test_no_page_is_over_5_mb(site: Path) -> None:
    sizes = {page: (site / page).stat().st_size for page in site_pages(site)}
    assert len(sizes) > 5
    assert max(sizes.values()) <= PAGE_LIMIT, max(sizes.items(), key=lambda item: item[1])


def test_the_site_is_ready_for_github_pages_and_zips(site: Path) -> None:
    """`.nojekyll`, and every link of every page names a file: no folder, no absolute path."""
    assert (site / ".nojekyll").is_file()
    for page in site_pages(site):
        for link in HREF.findall((site / page).read_text(encoding="utf-8")):
            assert not link.startswith("/") and "://" not in link, (page, link)
            target = (site / page).parent / link.split("#")[0]
            assert target.is_file(), (page, link)
            assert target.suffix in {".html", ".css", ".js", ".json", ".csv", ".gz"}, (page, link)


def visible_text(page: Path) -> str:
    """The page's text without tags, with white space collapsed."""
    text = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
    return " ".join(text.split())


def test_the_overview_says_what_was_sampled_and_paged(site: Path) -> None:
    text = visible_text(site / "index.html")
    pages = len(list(site.glob("expectancy*.html")))
    assert pages == -(-MAX_TOKENS // TOKENS_PER_PAGE)
    assert f"split into {pages} pages of at most {TOKENS_PER_PAGE:,} tokens" in text
    assert f"{MAX_POINTS:,} of {MAX_TOKENS:,} positions sampled for the t-SNE maps" in text
    neurons = pd.read_csv(site / "data" / "neurons.csv")
    per_state = neurons.groupby(["layer", "state"]).size().max()
    assert f"top {TOP_NEURONS} neurons of each layer and state, of {per_state}" in text
    assert f"the first {MAX_TOKENS:,} only" in text


def test_the_overview_shows_hashes_versions_and_options(site: Path, tiny_model: Path,
                                                        tiny_corpus: Path) -> None:
    text = visible_text(site / "index.html")
    assert hashlib.sha256(tiny_model.read_bytes()).hexdigest() in text
    assert hashlib.sha256((tiny_corpus / "test.txt").read_bytes()).hexdigest() in text
    for name in ("torch", "numpy", "openTSNE", "vl-convert-python"):
        assert f"{name} {metadata.version(name)}" in text
    assert f"embedding.max_points {MAX_POINTS}" in text
    assert f"site.top_neurons {TOP_NEURONS}" in text
    summary = json.loads((site / "data" / "report.json").read_text(encoding="utf-8"))
    assert summary["model"]["checkpoint_sha256"] in text
    assert {"load", "capture", "distributions"} <= set(summary["timings_seconds"])
    assert 'href="data/report.json"' in (site / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.browser
def test_the_demo_report_in_the_browser(demo_model: tuple[Path, Path], tmp_path: Path,
                                        browser: Any) -> None:
    """The demo as `reportgen demo` renders it: every page checked, none over 5 MB.

    It shares the module's browser: playwright's sync API cannot start a second one while the
    first is open.
    """
    corpus, checkpoint = demo_model
    out = build_report(ReportConfig(checkpoint, tmp_path / "demo", data=corpus, quiet=True,
                                    name="demo LSTM on the built-in corpus"))
    checks = check_site(browser, out)
    assert [problem for check in checks for problem in check.problems()] == []
    assert all(chart.marks > 0 for check in checks for chart in check.charts)
    assert max((out / check.path).stat().st_size for check in checks) <= PAGE_LIMIT
    figures = {path.name for path in (out / "img").iterdir()}
    for check in checks:
        for chart in check.charts:
            if check.path == "neurons.html":
                stem = chart.id.removeprefix("chart-")
                kind, state = stem.split("-", 1)
                assert {f"{state}-{kind}.svg", f"{state}-{kind}.png"} <= figures


HOVERED_POINTS = 9
VIEWS = """
window.__views = {};
document.addEventListener("chart-rendered", function (event) {
  window.__views[event.target.id] = event.detail.view;
});
"""
# The cluster and fill of every point the explorer draws now, from Vega's scene graph.
DRAWN_CLUSTERS = """
(id) => {
  var found = [];
  function walk(mark) {
    (mark.items || []).forEach(function (item) {
      if (mark.role === "mark" && item.datum && item.datum.cluster !== undefined) {
        found.push([String(item.datum.cluster), item.fill]);
      }
      (item.items || []).forEach(walk);
    });
  }
  walk(window.__views[id].scenegraph().root);
  return found;
}
"""


def settled_tab(context: Any, page: Path) -> Any:
    tab = open_page(context, page)
    tab.wait_for_function(
        "() => Array.from(document.querySelectorAll('div.chart')).every(d => d.dataset.rendered)")
    return tab


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "420px"])
def test_the_cluster_maps_tooltips_stay_inside_the_window(site: Path, browser: Any,
                                                          viewport: dict[str, int]) -> None:
    """Points across the whole map, its edges among them, each hovered: Vega's tip, placed
    beside the pointer, must not open past any edge of the window (it did at 420 px, and at
    the map's edges on a desktop)."""
    context = browser.new_context(viewport=viewport)
    tab = settled_tab(context, site / "clusters.html")
    points = tab.locator("div.chart svg g.role-mark path")
    boxes = [tab.evaluate("(el) => { var b = el.getBoundingClientRect(); return [b.x, b.y]; }",
                          handle) for handle in points.element_handles()]
    assert len(boxes) == MAX_POINTS
    xs, ys = [x for x, _ in boxes], [y for _, y in boxes]
    chosen = {xs.index(min(xs)), xs.index(max(xs)), ys.index(min(ys)), ys.index(max(ys))}
    chosen |= set(range(0, MAX_POINTS, MAX_POINTS // (HOVERED_POINTS - len(chosen)) + 1))
    tip = tab.locator("#vg-tooltip-element")
    shown = []
    for index in sorted(chosen):
        points.nth(index).hover(force=True)
        tab.wait_for_timeout(50)
        if not tip.count() or "visible" not in (tip.get_attribute("class") or ""):
            continue
        box = tip.bounding_box()
        shown.append(index)
        assert box["x"] >= 0 and box["y"] >= 0, (viewport, index, box)
        assert box["x"] + box["width"] <= viewport["width"], (viewport, index, box)
        assert box["y"] + box["height"] <= viewport["height"], (viewport, index, box)
    assert len(shown) >= HOVERED_POINTS - 2, shown  # a point under another may show no tip
    context.close()


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "420px"])
def test_charts_fit_or_say_that_they_scroll(site: Path, browser: Any,
                                            viewport: dict[str, int]) -> None:
    """A chart wider than its box scrolls inside it, and its cue says so; one that fits shows
    no cue. At 420 px the KL chart's legend and the AUROC chart's last bars are out of sight
    until the reader scrolls."""
    context = browser.new_context(viewport=viewport)
    neuron = sorted((site / "neuron").glob("*.html"))[0]
    charts = []
    for page in (site / "neurons.html", neuron, site / "clusters.html", site / "gates.html"):
        tab = settled_tab(context, page)
        charts += [(page.name, chart) for chart in tab.evaluate("""
            () => Array.from(document.querySelectorAll("div.chart")).map(div => ({
              id: div.id, wide: div.scrollWidth > div.clientWidth + 1,
              cue: !div.parentElement.querySelector(".scroll-cue").hidden}))""")]
        tab.close()
    context.close()
    assert [(page, chart["id"]) for page, chart in charts if chart["wide"] != chart["cue"]] == []
    wide = {chart["id"] for _, chart in charts if chart["wide"]}
    if viewport is PHONE:
        assert {"chart-kl-L1-h", "chart-auroc", "chart-clusters"} <= wide
    else:
        assert wide == set()


@pytest.mark.browser
def test_every_cluster_of_the_shown_cut_has_its_own_colour(site: Path, browser: Any) -> None:
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(VIEWS)
    tab = settled_tab(context, site / "clusters.html")
    chart = tab.locator("div.chart").first.get_attribute("id")
    for cut in EmbeddingOptions().all_cuts:
        tab.evaluate(f"(id) => window.__views[id].signal({CUT_PARAM!r}, {cut}).runAsync()"
                     ".then(() => true)", chart)
        drawn = tab.evaluate(DRAWN_CLUSTERS, chart)
        colours: dict[str, set[str]] = {}
        for cluster, fill in drawn:
            colours.setdefault(cluster, set()).add(fill)
        assert len(drawn) == MAX_POINTS
        assert all(len(fills) == 1 for fills in colours.values()), cut
        fills = [next(iter(fills)) for fills in colours.values()]
        assert len(set(fills)) == len(fills), (cut, len(fills), len(set(fills)))
        if cut:
            assert len(fills) == cut
    context.close()
