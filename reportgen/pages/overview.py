"""The overview section: the model's index page and `data/report.json`.

The index page shows the provenance a reader needs to trust or reproduce the report: the
checkpoint's and the text's SHA-256, every option and the library versions. The time each
stage took is only in `report.json`: it differs from run to run, and every page of a site is
otherwise the same bytes for the same inputs and options.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reportgen.heatmap import page_bounds
from reportgen.pages import Page, Section, SiteOptions
from reportgen.results import ModelReport
from reportgen.versions import library_versions


def section(report: ModelReport) -> None:
    """The overview is the model's home page, not a nav entry of its own."""


def option_rows(options: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested options as `("embedding.max_points", "300")` rows, in the order they were given."""
    rows = []
    for name, value in options.items():
        if isinstance(value, dict):
            rows += option_rows(value, f"{prefix}{name}.")
        elif isinstance(value, (list, tuple)):
            rows.append((prefix + name, ", ".join(map(str, value)) or "none"))
        else:
            rows.append((prefix + name, "none" if value is None else str(value)))
    return rows


def layout_notes(report: ModelReport, options: SiteOptions) -> list[str]:
    """What the pages split or leave out to stay light, beside what the analyses sampled."""
    notes = []
    n_pages = len(page_bounds(report.capture.n_tokens, options.tokens_per_page))
    if n_pages > 1:
        notes.append(f"the expectancy heatmap is split into {n_pages} pages of at most "
                     f"{options.tokens_per_page:,} tokens; --tokens-per-page sets how many")
    if report.distributions is not None:
        sizes = [stats.n_neurons for stats in report.distributions.states.values()]
        if sizes and options.top_neurons < max(sizes):
            notes.append(f"neuron pages only for the top {options.top_neurons:,} neurons of each "
                         f"layer and state, of {max(sizes):,}; --top-neurons sets how many")
    return notes


def pages(report: ModelReport, options: SiteOptions, sections: list[Section]) -> list[Page]:
    context = {
        "model": report.summary,
        "sections": sections,
        "notes": report.notes + layout_notes(report, options),
        "options": option_rows(report.options),
        "versions": library_versions(),
        "images": options.images,
    }
    return [Page("index.html", "model_index.html", report.summary.name, "index", context)]


def export(report: ModelReport, data: Path) -> None:
    payload = {
        "model": asdict(report.summary),
        "options": report.options,
        "timings_seconds": report.timings,
        "capture_reused_from_cache": report.capture_reused,
        "notes": report.notes,
        "versions": library_versions(),
    }
    (data / "report.json").write_text(
        json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
