"""Combine finished reports into one comparison site, without their models.

`reportgen compare REPORT_DIR... --out DIR` reads each report's `data/comparable/` (see
`reportgen.render.comparable`), copies each report folder into `DIR/NAME/`, and writes the comparison
page with the unit alignment and the representation similarity. The multi-model `reportgen
report` ends with the same `write_comparison_site` over the folders it has just written, so
both give the same comparison page, alignment pages and exports for the same models.

Reports rendered without `--comparison-positions` keep their figures but no states: they still
combine (perplexity, activations, near-zero shares, KL scores, labels), and the page says that
the unit alignment and the representation similarity need the flag.

A sweep can therefore run one job per model (on a cluster, each job `reportgen report` of one
checkpoint) and be combined afterwards on any machine.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from reportgen.analysis.alignment import AlignmentResult, align_models
from reportgen.analysis.comparison import Comparison, ModelFailure, compare
from reportgen.analysis.similarity import compare_representations
from reportgen.errors import ReportgenError
from reportgen.render.atomic import SITE_MARKER, atomic_folder
from reportgen.render.comparable import ComparableReport, read_comparable
from reportgen.render.pages import SiteOptions
from reportgen.render.pages.comparison import Relations
from reportgen.render.site import write_assets, write_comparison

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RESERVED_NAMES = ("alignment", "assets", "data", "img", "index.html")  # the site's own entries
DEFAULT_TITLE = "Model comparison"


@dataclass
class ReportArgument:
    """One report folder to combine, and the name it gets on the site (default: its own)."""

    folder: Path
    name: str | None = None


def parse_report_argument(argument: str) -> ReportArgument:
    """`[NAME=]DIR`; a folder whose name holds `=` is written with its parent, as `./a=b`."""
    head, equals, tail = argument.partition("=")
    if equals and MODEL_NAME.fullmatch(head) and tail:
        return ReportArgument(Path(tail), head)
    return ReportArgument(Path(argument))


def check_name(name: str, whose: str, renaming: str) -> None:
    """Each name becomes a folder of the site beside its own files: plain, and none of theirs.

    One check for `reportgen compare`'s reports and `reportgen report`'s models; the error
    says `whose` name it is and how to give another (`renaming`, as NAME=DIR).
    """
    if not MODEL_NAME.fullmatch(name):
        raise ReportgenError(f"{whose} {name!r} may hold only letters, digits, '.', '_' and "
                             f"'-'; name it with {renaming}")
    if name.lower() in RESERVED_NAMES:
        raise ReportgenError(f"{whose} {name!r} is taken by the comparison site's own files; "
                             f"name it with {renaming}")


@dataclass
class CombinedSite:
    """What `combine_reports` wrote."""

    comparison: Comparison
    without_states: list[str]  # models whose reports keep no states: no alignment, no CKA


def without_states(reports: Sequence[ComparableReport]) -> list[str]:
    """The models rendered without --comparison-positions, whose units cannot be aligned."""
    return [report.figures.name for report in reports if report.sample is None]


def check_same_positions(reports: Sequence[ComparableReport]) -> None:
    """Every report that keeps states must keep them at the same positions, or nothing lines
    up."""
    sampled = [(report, report.sample) for report in reports if report.sample is not None]
    if not sampled:
        return
    first, first_sample = sampled[0]
    for report, sample in sampled[1:]:
        if not np.array_equal(sample.positions, first_sample.positions):
            raise ReportgenError(
                f"{first.folder} and {report.folder} keep their states at different sampled "
                "positions; render both with the same --max-tokens and --comparison-positions")


def relations_of(reports: Sequence[ComparableReport], comparison: Comparison,
                 alignment: AlignmentResult | None = None) -> Relations | None:
    """Align the units (unless `alignment` is that of these models already) and compare the
    representations of the models, in page order; None when some report keeps no states to
    align."""
    check_same_positions(reports)
    if without_states(reports):
        return None
    by_name = {report.figures.name: report.sample for report in reports}
    samples = {m.name: sample for m in comparison.models
               if (sample := by_name[m.name]) is not None}
    labels = {(m.name, s.key): s.labels for m in comparison.models for s in m.states}
    return Relations(alignment or align_models(samples, labels),
                     compare_representations(samples),
                     len(next(iter(samples.values())).positions))


def write_comparison_site(reports: Sequence[ComparableReport], failures: Sequence[ModelFailure],
                          folder: Path, title: str, options: SiteOptions,
                          alignment: AlignmentResult | None = None) -> Comparison:
    """The comparison page and its alignment pages and exports, into a site whose model
    folders `folder/NAME/` are already written; a multi-model report passes the `alignment`
    its unit pages were written with, so the models are aligned once."""
    comparison = compare([report.figures for report in reports], failures)
    write_comparison(comparison, folder, title, options,
                     relations_of(reports, comparison, alignment), without_states(reports))
    return comparison


def read_reports(arguments: Sequence[ReportArgument]) -> list[ComparableReport]:
    """Each report's comparable data, named and linked as on the combined site."""
    reports = []
    for argument in arguments:
        report = read_comparable(argument.folder)
        name = argument.name or report.figures.name
        check_name(name, f"{argument.folder}: its model name", "NAME=DIR")
        reports.append(replace(report, figures=replace(report.figures, name=name,
                                                       href=f"{name}/index.html")))
    return reports


def check_out_apart(out: Path, arguments: Sequence[ReportArgument]) -> None:
    """--out replaces its folder whole: it must not be, nor hold, nor lie in a report read."""
    target = Path(out).absolute().resolve()
    for argument in arguments:
        folder = argument.folder.absolute().resolve()
        if target == folder or target in folder.parents or folder in target.parents:
            raise ReportgenError(f"--out {out} overlaps the report {argument.folder}, which it "
                                 "would replace; write the comparison to another folder")


def combine_reports(arguments: Sequence[str], out: Path, title: str | None = None,
                    options: SiteOptions | None = None) -> CombinedSite:
    """`reportgen compare`: the comparison site of finished reports, written atomically."""
    parsed = [parse_report_argument(argument) for argument in arguments]
    if len(parsed) < 2:
        raise ReportgenError("compare needs at least two report folders; one report is "
                             "already its own page")
    check_out_apart(out, parsed)
    reports = read_reports(parsed)
    options = options or SiteOptions()
    compare([report.figures for report in reports])  # names, vocabularies, texts: before copying
    check_same_positions(reports)
    with atomic_folder(out) as folder:
        write_assets(folder)
        for report in reports:
            shutil.copytree(report.folder, folder / report.figures.name,
                            ignore=shutil.ignore_patterns(SITE_MARKER))
        comparison = write_comparison_site(reports, [], folder, title or DEFAULT_TITLE, options)
    return CombinedSite(comparison, without_states(reports))
