"""The overview section: the model's index page and `data/report.json`.

The index page shows the provenance a reader needs to trust or reproduce the report: the
checkpoint's and the text's SHA-256, every option and the library versions. The time each
stage took is only in `report.json`: it differs from run to run, and every page of a site is
otherwise the same bytes for the same inputs and options.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reportgen.analysis.bundle import ModelReport, json_safe
from reportgen.capture.core import state_name
from reportgen.render.heatmap import page_bounds
from reportgen.render.pages import Page, Section, SiteOptions
from reportgen.render.pages.expectancy import shown_tokens
from reportgen.render.pages.neurons import neuron_page_path

CLASS_FINDING_SHARE = 0.7  # a cluster is a finding when this share of it is one class
MIN_FINDING_CLUSTER = 20  # points a cluster needs to count as a finding
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
    shown = shown_tokens(report.capture.n_tokens, options)
    if shown < report.capture.n_tokens:
        notes.append(f"the expectancy heatmap shows the text's first {shown:,} tokens of "
                     f"{report.capture.n_tokens:,}; --expectancy-tokens sets how many")
    n_pages = len(page_bounds(shown, options.tokens_per_page))
    if n_pages > 1:
        notes.append(f"the expectancy heatmap is split into {n_pages} pages of at most "
                     f"{options.tokens_per_page:,} tokens; --tokens-per-page sets how many")
    if report.distributions is not None and report.paged is not None:
        sizes = [stats.n_neurons for stats in report.distributions.states.values()]
        top_n = report.paged.top_n
        if sizes and top_n < max(sizes):
            notes.append(f"neuron pages only for the top {top_n:,} neurons of each layer and "
                         f"state, of {max(sizes):,}, and the units the concept index and the "
                         "findings name; --top-neurons sets how many")
    return notes


@dataclass(frozen=True)
class Finding:
    """One line of the overview's findings: what was found, and where to look."""

    topic: str  # a feature or a word class
    text: str
    href: str


def unit_findings(report: ModelReport) -> list[Finding]:
    """For each feature some unit is labelled with, the labelled unit that ranks best by KL (as
    `analysis.paged_units` chose it, and gave it a page): the thesis's interesting units, named
    by concept."""
    if report.concepts is None or report.distributions is None or report.paged is None:
        return []
    descriptions = report.concepts.descriptions or {}
    findings = []
    for found in report.paged.findings:
        state = report.concepts.states[found.key]
        stats = report.distributions.states[found.key]
        f, neuron = report.concepts.features.index(found.feature), found.neuron
        auroc, within = state.auroc[neuron, f], state.within[neuron, f]
        memory = "" if state.word_decided[f] else f", within-word {within:.3f}"
        findings.append(Finding(found.feature, (
            f"{state_name(found.key)} unit {neuron} is {'high' if auroc > 0.5 else 'low'} on "
            f"{descriptions.get(found.feature, found.feature)} (AUROC {auroc:.3f}{memory}; KL "
            f"rank {int(stats.rank[neuron])} of {stats.n_neurons}; {found.n_labelled} units "
            "labelled)"), neuron_page_path(found.key, neuron)))
    return findings


def cluster_findings(report: ModelReport) -> list[Finding]:
    """For each class, the purest cluster at the opening cut of any map and linkage, when
    most of its points belong to that class."""
    best: dict[str, tuple[float, str]] = {}
    for result in report.embeddings:
        for linkage, rows in result.tables.items():
            for row in rows:
                if (row.word_class and row.class_share >= CLASS_FINDING_SHARE
                        and row.size >= MIN_FINDING_CLUSTER
                        and row.class_share > best.get(row.word_class, (0.0, ""))[0]):
                    words = ", ".join(word for word, _ in row.top_words(5))
                    best[row.word_class] = (row.class_share, (
                        f"{state_name(result.key)} {linkage.replace('_', ' ')} cluster "
                        f"{row.cluster}: {row.class_share:.0%} of its {row.size:,} tokens "
                        f"({words})"))
    return [Finding(name, text, "clusters.html") for name, (_, text) in best.items()]


def pages(report: ModelReport, options: SiteOptions, sections: list[Section]) -> list[Page]:
    context = {
        "unit_findings": unit_findings(report),
        "cluster_findings": cluster_findings(report),
        "finding_share": CLASS_FINDING_SHARE,
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
        "capture_streams": asdict(report.capture.streams),
        "analyses_reused_from_cache": report.analyses_reused,
        "notes": report.notes,
        "versions": library_versions(),
    }
    if report.distributions is not None:
        payload["ranking_stability"] = report.distributions.stability_records()
    (data / "report.json").write_text(
        json.dumps(json_safe(payload), indent=2, sort_keys=True, default=str, allow_nan=False)
        + "\n", encoding="utf-8"
    )
