"""Open a report's pages from file:// in Debian's chromium, driven by playwright, and say what
is wrong with each: what a reader would see fail, and what a reviewer of a paper's supplement
would object to.

`check_page` loads one page and returns a `PageCheck`, whose `problems()` lists, in words:
- console errors, uncaught page errors and dialogs (alert, confirm, prompt);
- every request whose URL is not file:// (each is recorded and aborted, so none leaves the
  machine) and every file:// request that failed;
- every `div.chart` that never set `data-rendered="true"`, or that holds no svg or canvas, or
  whose svg or canvas draws no data mark;
- every relative link (`a`, `link`, `script`, `img`) and every `href` in a chart's data that does
  not resolve to a file of the site, and every `javascript:` link;
- a page wider than the window, so that the reader must scroll sideways: what scrolls inside its own
  box (a chart, a wide table in `.scroll-x`) does not count, since it does not widen the page.

Playwright never downloads a browser here: it launches /usr/bin/chromium. Without that file the
tests skip, unless CI is set, where they fail: a CI run must never pass by skipping them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]
RENDER_TIMEOUT_MS = 20_000  # the slowest chart of a test site draws in well under a second
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 420, "height": 860}  # a large phone held upright, in CSS pixels

# Runs before any script of each page: counts the data marks of each chart from its Vega scene
# graph when report.js announces it ("chart-rendered"), which works for canvas as well as svg.
COUNT_MARKS = """
window.__reportgenMarks = {};
document.addEventListener("chart-rendered", function (event) {
  function count(mark) {
    var total = 0;
    (mark.items || []).forEach(function (item) {
      if (mark.role === "mark") total += 1;
      (item.items || []).forEach(function (child) { total += count(child); });
    });
    return total;
  }
  window.__reportgenMarks[event.target.id] = count(event.detail.view.scenegraph().root);
});
"""

# The state of every chart div: its flag, what it draws into and how many data marks it drew.
# In svg, Vega puts each data mark's items under a `g.role-mark`; axes and legends use other roles.
CHART_STATES = """
() => Array.from(document.querySelectorAll("div.chart")).map(function (div) {
  var svg = div.querySelector("svg");
  var canvas = div.querySelector("canvas");
  var marks = svg ? svg.querySelectorAll("g.role-mark > *").length
                  : (window.__reportgenMarks[div.id] || 0);
  return {id: div.id, rendered: div.dataset.rendered || "",
          element: svg ? "svg" : (canvas ? "canvas" : ""), marks: marks};
})
"""

LINKS = """
() => Array.from(document.querySelectorAll("a[href], link[href], script[src], img[src]")).map(
  function (element) {
    return {tag: element.tagName.toLowerCase(),
            raw: element.getAttribute("href") || element.getAttribute("src") || "",
            resolved: element.href || element.src || ""};
  })
"""

SPECS = """
() => Array.from(document.querySelectorAll('script[type="application/json"]')).map(
  function (element) { return element.textContent; })
"""

# How wide the page is against its window, and the elements that stick out past the window's
# right edge without a scrolling box (overflow-x auto, scroll or hidden) between them and the page.
WIDTH = r"""
() => {
  var width = document.documentElement.clientWidth;
  function boxed(element) {
    for (var up = element.parentElement; up && up !== document.body; up = up.parentElement) {
      if (["auto", "scroll", "hidden"].indexOf(getComputedStyle(up).overflowX) >= 0) return true;
    }
    return false;
  }
  var wide = Array.from(document.body.querySelectorAll("*")).filter(function (element) {
    return element.getBoundingClientRect().right > width + 0.5 && !boxed(element);
  }).slice(0, 5).map(function (element) {
    var name = element.tagName.toLowerCase();
    var cls = typeof element.className === "string" && element.className
      ? "." + element.className.trim().split(/\s+/).join(".") : "";
    return name + cls + " to " + Math.round(element.getBoundingClientRect().right) + " px";
  });
  return {page: document.documentElement.scrollWidth, window: width, wide: wide};
}
"""

ALL_CHARTS_SETTLED = """
() => Array.from(document.querySelectorAll("div.chart")).every(div => div.dataset.rendered)
"""


@dataclass
class ChartState:
    id: str
    rendered: str  # "true", "error", or "" when it never finished
    element: str  # "svg", "canvas" or ""
    marks: int  # data marks drawn


@dataclass
class PageCheck:
    """What loading one page showed; `problems()` says what is wrong with it, in words."""

    path: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    charts: list[ChartState] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    settled: bool = True  # every chart set data-rendered before the time limit
    page_width: int = 0  # px: the document's scroll width once the charts are drawn
    window_width: int = 0  # px: the window's width
    wide: list[str] = field(default_factory=list)  # elements past the window's edge, unboxed
    probed: dict[str, Any] = field(default_factory=dict)  # what each probe returned

    def problems(self) -> list[str]:
        found = [f"console error: {text}" for text in self.console_errors]
        found += [f"page error: {text}" for text in self.page_errors]
        found += [f"dialog opened: {text}" for text in self.dialogs]
        found += [f"request outside file://: {url}"
                  for url in dict.fromkeys(self.outside_requests)]
        found += [f"request failed: {url}" for url in self.failed_requests]
        found += [f"broken link: {link}" for link in self.broken_links]
        if not self.settled:
            found.append("some chart never finished rendering")
        if self.page_width > self.window_width:
            found.append(f"{self.page_width} px wide in a {self.window_width} px window, "
                         f"scrolls sideways: {', '.join(self.wide) or 'no element found'}")
        for chart in self.charts:
            if chart.rendered != "true":
                found.append(f"chart {chart.id}: data-rendered={chart.rendered!r}")
            elif not chart.element:
                found.append(f"chart {chart.id}: no svg or canvas")
            elif chart.marks == 0:
                found.append(f"chart {chart.id}: its {chart.element} draws no data mark")
        return [f"{self.path}: {problem}" for problem in found]


def browser_available() -> None:
    """Skip when this machine cannot run the browser tests, or fail under CI, which must."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        missing.append("the playwright package is missing (pip install -e '.[test]')")
    if not missing:
        return
    reason = "; ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the browser tests must run, but {reason}", pytrace=False)
    pytest.skip(f"browser tests need Debian chromium and playwright: {reason}")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium from /usr/bin; playwright's own browsers are never used."""
    browser_available()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def site_pages(root: Path) -> list[str]:
    """Every HTML page of a site, relative to its root, in a stable order."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*.html")
                  if not any(part.startswith(".") for part in path.relative_to(root).parts))


def file_of(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def link_problem(raw: str, resolved: str, root: Path) -> str | None:
    """Why a link is broken, or None; links with a scheme other than javascript: are not ours."""
    scheme = urlsplit(raw).scheme.lower()
    if scheme == "javascript":
        return f"{raw!r} runs script"
    if scheme or raw.startswith(("#", "//")) or not raw:
        return None
    target = file_of(resolved)
    if not target.is_relative_to(root.resolve()):
        return f"{raw!r} leaves the site ({target})"
    if not target.is_file():
        return f"{raw!r} -> {target} is not a file"
    return None


def spec_hrefs(spec: Any) -> Iterator[str]:
    """Every string under an `href` key of a chart's spec: the pages its marks open on click."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "href" and isinstance(value, str):
                yield value
            else:
                yield from spec_hrefs(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from spec_hrefs(item)


def broken_links(page: Any, url: str, root: Path) -> list[str]:
    found = [problem for link in page.evaluate(LINKS)
             if (problem := link_problem(link["raw"], link["resolved"], root))]
    for text in page.evaluate(SPECS):
        for href in spec_hrefs(json.loads(text)):
            if problem := link_problem(href, urljoin(url, href), root):
                found.append(f"chart data {problem}")
    return found


def checking_context(browser: Any, viewport: dict[str, int] | None = None,
                     touch: bool = False) -> Any:
    """A browser context whose pages count their charts' marks as they render: a desktop
    window by default, or `viewport`; `touch` makes it a touch screen, where `page.tap` works."""
    context = browser.new_context(viewport=viewport or DESKTOP, has_touch=touch,
                                  is_mobile=touch)
    context.add_init_script(COUNT_MARKS)
    return context


def check_page(context: Any, root: Path, relative: str,
               probes: dict[str, str] | None = None) -> PageCheck:
    """Open `root/relative` from file:// in a new tab of a `checking_context` and record what
    happened: every request is routed, and any that is not file:// is recorded and aborted.

    `probes` are JavaScript functions, by name, evaluated once the charts have rendered; what
    each returns is kept in `probed`.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: PLC0415

    check = PageCheck(relative)
    page = context.new_page()
    aborted: set[str] = set()

    def route(handler: Any) -> None:
        request_url = handler.request.url
        if request_url.startswith("file:"):
            handler.continue_()
            return
        check.outside_requests.append(request_url)
        aborted.add(request_url)
        handler.abort()

    page.route("**/*", route)
    page.on("console", lambda message: check.console_errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: check.page_errors.append(str(error)))
    page.on("dialog", lambda dialog: (check.dialogs.append(f"{dialog.type}: {dialog.message}"),
                                      dialog.dismiss()))
    page.on("request", lambda request: check.outside_requests.append(request.url)
            if not request.url.startswith(("file:", "data:", "blob:")) else None)
    page.on("requestfailed", lambda request: check.failed_requests.append(request.url)
            if request.url not in aborted else None)
    url = (root / relative).resolve().as_uri()
    page.goto(url)
    try:
        page.wait_for_function(ALL_CHARTS_SETTLED, timeout=RENDER_TIMEOUT_MS)
    except PlaywrightTimeout:
        check.settled = False
    check.charts = [ChartState(**state) for state in page.evaluate(CHART_STATES)]
    check.broken_links = broken_links(page, url, root)
    width = page.evaluate(WIDTH)
    check.page_width, check.window_width, check.wide = width["page"], width["window"], width["wide"]
    check.probed = {name: page.evaluate(script) for name, script in (probes or {}).items()}
    page.close()
    return check


def check_site(browser: Any, root: Path, probes: dict[str, str] | None = None,
               viewport: dict[str, int] | None = None, touch: bool = False) -> list[PageCheck]:
    """Every page of the site at `root`, each in its own tab of a `checking_context`."""
    context = checking_context(browser, viewport, touch)
    try:
        return [check_page(context, root, relative, probes) for relative in site_pages(root)]
    finally:
        context.close()
