"""Pages: what goes where. Each section module turns a `ModelReport` into `Page`s and exports.

A section module provides three functions, so adding a section is one new module plus one
line in `reportgen.site.SECTIONS`:
- `section(report) -> Section | None`: its nav entry and overview card, None when the report
  lacks that analysis;
- `pages(report, options) -> list[Page]`: the pages, with their template context and charts;
- `export(report, data_folder) -> None`: its files under `data/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import altair as alt
from altair.utils.schemapi import debug_mode


@dataclass
class ChartSpec:
    """One Vega-Lite chart on a page: its id (unique in the page) and its spec."""

    id: str
    spec: dict[str, Any]
    caption: str = ""
    image_name: str = ""  # file stem under img/ for the static figure, "" for none


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
    expectancy_scale: str = "log"  # "log" (log10 p) or "linear" (p), see reportgen.heatmap
    top_neurons: int = 20  # neuron pages per layer and state
    images: bool = True  # also write PNG and SVG figures under img/
    all_figures: bool = False  # figures of every top neuron's page too, not only the main charts


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
