"""Figures for papers: static PNG and SVG files under the model folder's `img/`.

Every chart that names an `image_name` is converted by vl-convert, the same Vega-Lite engine
the pages use, so a figure shows exactly what the page draws. The heatmaps are HTML spans on
the pages; their figures are SVGs of an excerpt (the text's first tokens for expectancy, each
paged neuron's highest stretch) laid out here in a monospace grid and written through the
`heatmap.svg` template, whose autoescape keeps corpus text as text.

Each SVG is converted to PNG by vl-convert's resvg (`svg_to_png`): that gives the same bytes as
`vegalite_to_png` (checked on the neurons charts) for a third of the time, since Vega runs once.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import vl_convert

from reportgen.analysis.bundle import ModelReport
from reportgen.capture.core import state_name
from reportgen.progress import Progress, progress_enabled
from reportgen.render.heatmap import TokenCell, expectancy_cells
from reportgen.render.pages import ChartSpec, Page, SiteOptions, neurons, unit_contexts

IMAGE_FOLDER = "img"  # under the model folder
PNG_SCALE = 2  # pixels per CSS pixel: sharp when printed at the on-screen size
EXPECTANCY_EXCERPT_TOKENS = 200  # the first tokens of the text, as the thesis's figures show

FONT_SIZE = 12  # px
CHAR_WIDTH = 0.6 * FONT_SIZE  # the advance of DejaVu Sans Mono and Liberation Mono: 0.6 em
LINE_HEIGHT = 20  # px: the token box and the gap below it
BOX_HEIGHT = 17
PAD = 3  # px of colour either side of a token's text
GAP = 3  # px between tokens
MARGIN = 10
CAPTION_HEIGHT = 24
FIGURE_WIDTH = 760  # px: a page width at 96 dpi with room for margins

# Characters XML 1.0 forbids, even escaped: a token holding one would make the SVG unreadable.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class PlacedToken:
    """One token of a heatmap figure, at its place; `text` is untrusted and escaped later."""

    x: float
    y: float
    width: float
    text: str
    title: str
    color: str
    dark: bool
    outlined: bool  # the centre of a neuron excerpt, as the page outlines it


@dataclass(frozen=True)
class HeatmapFigure:
    """A laid-out heatmap excerpt, ready for `heatmap.svg`."""

    width: int
    height: int
    caption: str
    tokens: list[PlacedToken]
    font_size: int = FONT_SIZE
    box_height: int = BOX_HEIGHT
    pad: int = PAD


def char_width(char: str) -> int:
    """Monospace cells a character takes: wide East Asian characters take two."""
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def display_width(text: str) -> int:
    return sum(map(char_width, text))


def shown_text(cell: TokenCell, max_cells: int) -> str:
    """The token as the figure writes it: `<eos>` as ⏎, XML-safe, cut with … when too wide.

    One pass, whatever the token's length: a text may hold a word of 10,000 characters.
    """
    text = XML_FORBIDDEN.sub("\ufffd", "⏎" if cell.line_end else cell.text)
    if display_width(text) <= max_cells:
        return text
    kept, used = [], 0
    for char in text:
        used += char_width(char)
        if used > max_cells - 1:  # one cell left for the ellipsis
            break
        kept.append(char)
    return "".join(kept) + "…"


def layout_heatmap(cells: list[TokenCell], caption: str, width: int = FIGURE_WIDTH,
                   outlined: int | None = None) -> HeatmapFigure:
    """Place the tokens left to right in lines of `width` px, breaking after each `<eos>`.

    Widths come from the monospace advance, and the template stretches each text to its box
    (`textLength`), so the layout holds whatever monospace font the viewer substitutes.
    """
    max_cells = int((width - 2 * MARGIN - 2 * PAD) // CHAR_WIDTH)
    top = MARGIN + CAPTION_HEIGHT
    x, y = float(MARGIN), float(top)
    placed = []
    for cell in cells:
        text = shown_text(cell, max_cells)
        box = display_width(text) * CHAR_WIDTH + 2 * PAD
        if x + box > width - MARGIN and x > MARGIN:
            x, y = float(MARGIN), y + LINE_HEIGHT
        placed.append(PlacedToken(x, y, box, text, XML_FORBIDDEN.sub("\ufffd", cell.title),
                                  cell.color, cell.dark, cell.position == outlined))
        x += box + GAP
        if cell.line_end:
            x, y = float(MARGIN), y + LINE_HEIGHT
    bottom = y + LINE_HEIGHT if x > MARGIN else y
    return HeatmapFigure(width, int(bottom + MARGIN), caption, placed)


def render_heatmap_svg(env: jinja2.Environment, figure: HeatmapFigure) -> str:
    return env.get_template("heatmap.svg").render(figure=figure)


def expectancy_figure(report: ModelReport, scale: str = "log") -> HeatmapFigure:
    stop = min(report.capture.n_tokens, EXPECTANCY_EXCERPT_TOKENS)
    colours = ("blue p <= 1e-5 to red p = 1, log scale" if scale == "log"
               else "blue 0 to red 1")
    caption = (f"{report.summary.name}: p(word) of tokens 0 to {stop - 1} of "
               f"{report.summary.text_name}, {colours}")
    return layout_heatmap(expectancy_cells(report.capture, 0, stop, scale), caption)


def neuron_figures(report: ModelReport, options: SiteOptions) -> dict[str, HeatmapFigure]:
    """Each paged neuron's excerpt around its highest value, as its page shows it first.

    These are written as SVG only: a PNG of each takes about 120 KB, 10 MB for the demo's 80
    neurons, against 8 KB for the SVG.
    """
    if report.distributions is None or not options.all_figures:
        return {}
    figures = {}
    tokens = report.capture.tokens
    for key, chosen in neurons.paged_of(report).top.items():
        for neuron in chosen:
            values = report.capture.states[key][:, neuron].astype(np.float32)  # (T,)
            scale = float(np.max(np.abs(values)))
            label = f"{state_name(key)} neuron {neuron}"
            excerpt = unit_contexts.excerpts(tokens, values, True, scale)[0]
            caption = (f"{label}: highest value {excerpt.value:+.3f} at position "
                       f"{excerpt.centre} (outlined), blue -{scale:.3f} to red +{scale:.3f}")
            figures[f"{state_name(key)}-{neuron:04d}-excerpt"] = layout_heatmap(
                excerpt.cells, caption, outlined=excerpt.centre)
    return figures


def named_charts(pages: list[Page]) -> dict[str, ChartSpec]:
    """The charts that ask for a figure, by file stem; a stem names one chart only."""
    charts: dict[str, ChartSpec] = {}
    for page in pages:
        for chart in page.charts:
            if not chart.image_name:
                continue
            if chart.image_name in charts and charts[chart.image_name].spec != chart.spec:
                raise ValueError(f"two different charts want the figure {chart.image_name!r}")
            charts[chart.image_name] = chart
    return charts


def figure_spec(spec: dict) -> dict:
    """A page's chart as its figure draws it: the same marks, without the ARIA label Vega
    gives each mark (its tooltip's fields, corpus text included). A figure is an image in a
    paper; the labels made up half of each SVG, 1.1 of the 2 MB of a 5,000-point map's."""
    return {**spec, "config": {**spec.get("config", {}), "aria": False}}


def write_svg_and_png(svg: str, folder: Path, stem: str) -> list[Path]:
    """Write a chart's SVG and its PNG. Corpus text can reach a chart's SVG through a title or
    label taken from the data, so characters XML forbids become U+FFFD first: the PNG renderer
    refuses them, and so would any SVG reader."""
    svg = XML_FORBIDDEN.sub("\ufffd", svg)
    svg_path, png_path = folder / f"{stem}.svg", folder / f"{stem}.png"
    svg_path.write_text(svg, encoding="utf-8")
    png_path.write_bytes(vl_convert.svg_to_png(svg, scale=PNG_SCALE))
    return [svg_path, png_path]


def write_images(report: ModelReport, pages: list[Page], folder: Path, env: jinja2.Environment,
                 options: SiteOptions, progress: bool | None = False) -> list[Path]:
    """Write every figure into `folder` (the model's `img/`) and return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    charts = named_charts(pages)
    with Progress("figures", len(charts), "charts", **progress_enabled(progress)) as bar:
        for stem, chart in charts.items():
            written += write_svg_and_png(vl_convert.vegalite_to_svg(figure_spec(chart.spec)),
                                         folder, stem)
            bar.advance()
    excerpt = expectancy_figure(report, options.expectancy_scale)
    written += write_svg_and_png(render_heatmap_svg(env, excerpt), folder, "expectancy-excerpt")
    for stem, figure in neuron_figures(report, options).items():
        path = folder / f"{stem}.svg"
        path.write_text(render_heatmap_svg(env, figure), encoding="utf-8")
        written.append(path)
    return written
