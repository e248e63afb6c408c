"""Templates take their constants and formats from Python, and each shared macro lives once.

Each test changes a Python constant, renders, and checks that the page follows: a number typed
into a template again, or a second copy of a macro, would make it fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browsertools import check_page, checking_context, chromium

from reportgen.charts import CANVAS_ABOVE
from reportgen.render import heatmap, site

TEMPLATES = site.templates_dir()


def render(source: str, **context) -> str:
    return site.make_environment().from_string(source).render(**context)


def page_frame(**charts) -> dict:
    """What base.html needs to render a page: no nav, and `charts` as chart items."""
    return {"page_title": "t", "site_title": "s", "root": "", "home": "", "nav": [],
            "version": "0", "charts": list(charts.values())}


def chart_item(chart_id: str) -> dict:
    return {"id": chart_id, "caption": "", "spec": {"data": {"values": []}}}


def test_legend_takes_its_colours_from_heatmap_constants(monkeypatch) -> None:
    legend = '{% from "macros.html" import legend %}{{ legend(item) }}'
    before = render(legend, item=heatmap.expectancy_legend())
    assert "#b2182b 100%" in before  # RdBu's red, heatmap.RED, at the legend's right end
    monkeypatch.setattr(heatmap, "RED", (10, 20, 30))
    after = render(legend, item=heatmap.expectancy_legend())
    assert "#0a141e 100%" in after and "#b2182b" not in after
    cell = heatmap.sequential_color(1.0)[0]  # the cells follow the same constant
    assert cell == "#0a141e"


def comparison_page() -> str:
    context = page_frame(**{name: chart_item(name)
                            for name in ("perplexity", "mean-abs", "near-zero", "kl-scores")})
    context.update(title="c", models=[], text_name="test.txt", n_tokens=10, table_name="t.csv",
                   failures=[], without_dropout=[], relations=None, without_states=[], states=[],
                   charts_by_id={chart["id"]: chart for chart in context["charts"]})
    return site.make_environment().get_template("comparison.html").render(**context)


def test_comparison_page_states_the_near_zero_rule_from_distributions(monkeypatch) -> None:
    from reportgen.analysis.distributions import NEAR_ZERO_SHARE
    from reportgen.analysis.histograms import NEAR_ZERO_BOUND

    rule = "Near-zero neurons have more than {:.0%} of their values within ±{}."
    assert rule.format(NEAR_ZERO_SHARE, NEAR_ZERO_BOUND) in comparison_page()
    assert "more than 90% of their values within ±0.01." in comparison_page()  # as before
    monkeypatch.setattr(site, "NEAR_ZERO_SHARE", 0.75)
    monkeypatch.setattr(site, "NEAR_ZERO_BOUND", 0.02)
    assert rule.format(0.75, 0.02) in comparison_page()


def test_report_js_reads_canvas_above_from_the_page(monkeypatch) -> None:
    script = (TEMPLATES / "assets" / "report.js").read_text(encoding="utf-8")
    assert not re.search(rf"\b{CANVAS_ABOVE}\b", script), "report.js keeps its own CANVAS_ABOVE"
    assert "dataset.canvasAbove" in script
    with_chart = page_frame(a=chart_item("a"))
    page = render('{% extends "base.html" %}', **with_chart)
    assert f'report.js" data-canvas-above="{CANVAS_ABOVE}"></script>' in page
    monkeypatch.setattr(site, "CANVAS_ABOVE", 1234)
    assert 'data-canvas-above="1234"' in render('{% extends "base.html" %}', **with_chart)
    # a page without charts draws nothing, and its script tag stays as it was
    assert 'report.js"></script>' in render('{% extends "base.html" %}', **page_frame())


THREE_POINTS = {"data": {"values": [{"x": 1}, {"x": 2}, {"x": 3}]}, "mark": "point",
                "encoding": {"x": {"field": "x", "type": "quantitative"}}}
ONE_CHART = ('{% extends "base.html" %}{% from "macros.html" import chart %}'
             "{% block content %}{{ chart(charts[0]) }}{% endblock %}")


@pytest.mark.browser
def test_report_js_draws_on_canvas_above_the_pages_canvas_above(monkeypatch,
                                                                tmp_path: Path) -> None:
    site.write_assets(tmp_path)
    chart = {"id": "three", "caption": "", "spec": THREE_POINTS}
    pages = {"svg": "index.html", "canvas": "canvas.html"}  # the header links index.html
    (tmp_path / pages["svg"]).write_text(render(ONE_CHART, **page_frame(c=chart)),
                                         encoding="utf-8")
    monkeypatch.setattr(site, "CANVAS_ABOVE", 2)  # 3 points are more than 2
    (tmp_path / pages["canvas"]).write_text(render(ONE_CHART, **page_frame(c=chart)),
                                            encoding="utf-8")
    with chromium() as browser:
        context = checking_context(browser)
        drawn = {element: check_page(context, tmp_path, page) for element, page in pages.items()}
        context.close()
    for element, check in drawn.items():
        assert check.problems() == []
        assert [(chart.element, chart.marks) for chart in check.charts] == [(element, 3)]


def test_gate_thresholds_reach_the_gates_page(monkeypatch) -> None:
    context = page_frame()
    context.update(n_tokens=10, memory_gate="f", rnn_type="LSTM", layers=[], long_memory=100)
    page = site.make_environment().get_template("gates.html").render(**context)
    assert "below 0.1 and <em>right-saturated</em> (nearly open) above 0.9" in page
    monkeypatch.setattr(site, "LEFT", 0.05)
    monkeypatch.setattr(site, "RIGHT", 0.95)
    page = site.make_environment().get_template("gates.html").render(**context)
    assert "below 0.05 and <em>right-saturated</em> (nearly open) above 0.95" in page


@pytest.mark.parametrize("value", [0.03125, -1.5, 0.0, -0.0, 12.345678])
def test_signed_filter_writes_what_the_tooltips_write(value: float) -> None:
    assert render("{{ v|signed }}", v=value) == "%+.4f" % value
    cell = heatmap.activation_cells(["w"], [value], 0, 1, scale=1.0)[0]
    assert cell.title == render("{{ v|signed }}", v=value)


# Numbers Python owns that a template once typed in: the near-zero rule, the gate thresholds,
# the histograms' bin width, and the format of a signed value.
TYPED_COPIES = re.compile(r"90%|±0\.01|&lt; 0\.1\b|&gt; 0\.9\b|bins of 0\.01|%\+\.4f")


def test_no_template_types_a_python_constant_again() -> None:
    for path in sorted(TEMPLATES.glob("*.html")):
        found = TYPED_COPIES.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name} types {found}: pass it from Python (site.page_constants)"


def test_each_macro_is_defined_in_one_template() -> None:
    homes: dict[str, list[str]] = {}
    for path in sorted(Path(TEMPLATES).glob("*.html")):
        for name in re.findall(r"\{%-?\s*macro\s+(\w+)", path.read_text(encoding="utf-8")):
            homes.setdefault(name, []).append(path.name)
    assert {"number", "sortable", "linked", "match"} <= homes.keys()
    assert {name: places for name, places in homes.items() if len(places) > 1} == {}


@pytest.mark.parametrize(("unit", "href", "cell"), [
    (None, "a.html", "–"),  # no one-to-one match: a dash
    (7, None, "7"),  # a unit without a page: its number alone
    (7, "../m/neuron/L1-h-0007.html", '<a href="../m/neuron/L1-h-0007.html">7</a>'),
    (7, '"><b>', '<a href="&#34;&gt;&lt;b&gt;">7</a>'),  # an href stays inside its attribute
])
def test_match_cells_read_as_the_tables_wrote_them(unit, href, cell: str) -> None:
    assert render('{% from "tables.html" import match %}{{ match(unit, href) }}',
                  unit=unit, href=href) == cell
