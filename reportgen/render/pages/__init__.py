"""Pages: what goes where. Each section module turns a `ModelReport` into `Page`s and exports.

A section module provides three functions, so adding a section is one new module plus one
line in `reportgen.render.site.SECTIONS`:
- `section(report) -> Section | None`: its nav entry and overview card, None when the report
  lacks that analysis;
- `pages(report, options) -> list[Page]`: the pages, with their template context and charts;
- `export(report, data_folder) -> None`: its files under `data/`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import altair as alt
from altair.utils.schemapi import debug_mode

SIGNIFICANT_DIGITS = 4  # of a chart's numbers: beyond what any axis, tooltip or figure shows


def rounded_numbers(value: Any) -> Any:
    """`value` with every float cut to SIGNIFICANT_DIGITS, never above the units place.

    A histogram's shares came out as 1.85486059500049e-05; written as 1.855e-05 they draw the
    same chart and the specs of a neuron page shrink to less than half.
    """
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return value
        decimals = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value)))
        return round(value, max(decimals, 0))
    if isinstance(value, dict):
        return {key: rounded_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded_numbers(item) for item in value]
    return value


@dataclass
class ChartSpec:
    """One Vega-Lite chart on a page: its id (unique in the page) and its spec.

    The spec's numbers are rounded on the way in, so the page and its figures carry the same,
    shorter numbers.
    """

    id: str
    spec: dict[str, Any]
    caption: str = ""
    image_name: str = ""  # file stem under img/ for the static figure, "" for none

    def __post_init__(self) -> None:
        self.spec = rounded_numbers(self.spec)


@dataclass
class Page:
    """One HTML file of a model's folder, relative to that folder."""

    path: str  # e.g. "expectancy.html", "neuron/L1-h-0042.html"
    template: str
    title: str
    section: str  # which nav entry is current
    context: dict[str, Any] = field(default_factory=dict)
    charts: list[ChartSpec] = field(default_factory=list)


@dataclass
class Section:
    """A nav entry and overview card of a model's report."""

    key: str
    title: str
    href: str
    blurb: str


@dataclass
class SiteOptions:
    """How the pages are laid out; none of these change an analysis."""

    tokens_per_page: int = 2000  # expectancy heatmap tokens per page
    expectancy_tokens: int | None = 20_000  # the text's first tokens in those pages; None: all
    expectancy_scale: str = "log"  # "log" (log10 p) or "linear" (p), see reportgen.render.heatmap
    top_neurons: int = 20  # neuron pages per layer and state
    images: bool = True  # also write PNG and SVG figures under img/
    all_figures: bool = False  # figures of every top neuron's page too, not only the main charts
    # states kept in data/comparable/ per layer-state for `reportgen compare`; 0 keeps none (a
    # 2x650 model's 4,000 are 21 MB), and a multi-model report keeps SAMPLE_POSITIONS then
    comparison_positions: int = 0


def page_spec(chart: alt.Chart) -> dict[str, Any]:
    """The Vega-Lite of a chart for a page, validated.

    Without `$schema`: its URL is only a version tag, which vegaEmbed does not need (it reads a
    spec without one as Vega-Lite), and a page that names no URL is plainly offline.
    """
    spec = chart.to_dict()
    spec.pop("$schema", None)
    return spec


def unvalidated_spec(build: Callable[[], alt.Chart]) -> dict[str, Any]:
    """The Vega-Lite of a chart, built and converted without schema validation.

    Validation costs about 70 ms a chart, most of the render time of the neuron pages. Their
    charts come from the same builders as those of neurons.html, which are validated, and
    differ only in their data rows.
    """
    with debug_mode(False):
        spec = build().to_dict(validate=False)
    spec.pop("$schema", None)
    return spec
