"""The overview section: the model's index page and `data/report.json`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from reportgen.pages import Page, Section, SiteOptions
from reportgen.results import ModelReport
from reportgen.versions import library_versions


def section(report: ModelReport) -> None:
    """The overview is the model's home page, not a nav entry of its own."""


def pages(report: ModelReport, options: SiteOptions, sections: list[Section]) -> list[Page]:
    return [Page("index.html", "model_index.html", report.summary.name, "index",
                 {"model": report.summary, "sections": sections, "notes": report.notes})]


def export(report: ModelReport, data: Path) -> None:
    payload = {
        "model": asdict(report.summary),
        "options": report.options,
        "timings_seconds": report.timings,
        "notes": report.notes,
        "versions": library_versions(),
    }
    (data / "report.json").write_text(
        json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
