"""Site: render a `ModelReport` into a folder of light static pages, written atomically.

Pages are Jinja2 templates rendered with autoescape on; chart specs reach the page as JSON via
`|tojson` inside `<script type="application/json">`, which escapes `<`, `>` and `&`, so corpus
text can never close the tag. The folder is built beside the target and swapped in only when
complete, so a failed or interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import vl_convert

from reportgen.errors import ReportgenError
from reportgen.heatmap import expectancy_cells, page_bounds
from reportgen.results import ModelReport

SITE_MARKER = ".reportgen-site"  # marks a folder as ours, so a re-run may replace it
VERSION = "0.1.0"


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
    tokens_per_page: int = 2000  # expectancy heatmap tokens per page


PageBuilder = Callable[[ModelReport, SiteOptions], list[Page]]


def templates_dir() -> Path:
    """Templates ship inside the wheel as `reportgen/templates`; a checkout has them at the top."""
    packaged = Path(str(resources.files("reportgen"))) / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


def thousands(value: int) -> str:
    return f"{value:,}"


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["thousands"] = thousands
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": True}
    return env


def expectancy_pages(report: ModelReport, options: SiteOptions) -> list[Page]:
    """The text as a heatmap of p(word), split into pages of `tokens_per_page` tokens."""
    bounds = page_bounds(report.capture.n_tokens, options.tokens_per_page)
    names = ["expectancy.html"] + [f"expectancy-{i}.html" for i in range(2, len(bounds) + 1)]
    links = [{"href": name, "label": str(i)} for i, name in enumerate(names, start=1)]
    return [
        Page(
            path=name,
            template="expectancy.html",
            title="Expectancy",
            section="expectancy",
            context={
                "cells": expectancy_cells(report.capture, start, stop),
                "pages": links,
                "current": index,
                "start": start,
                "stop": stop,
                "tokens_per_page": options.tokens_per_page,
            },
        )
        for index, (name, (start, stop)) in enumerate(zip(names, bounds))
    ]


def sections_of(report: ModelReport) -> list[Section]:
    """The sections this report has, in nav order."""
    return [
        Section("expectancy", "Expectancy", "expectancy.html",
                "The text coloured by how strongly the model expected each word."),
    ]


def overview_page(report: ModelReport, options: SiteOptions) -> list[Page]:
    return [Page("index.html", "model_index.html", report.summary.name, "index",
                 {"model": report.summary, "sections": sections_of(report),
                  "notes": report.notes})]


PAGE_BUILDERS: list[PageBuilder] = [overview_page, expectancy_pages]


def render_page(env: jinja2.Environment, page: Page, report: ModelReport, home: str) -> str:
    """`home` is the relative path from the model folder to the site root ("" or "../")."""
    depth = page.path.count("/")
    up = "../" * depth
    nav = [{"title": "Overview", "href": up + "index.html", "current": page.section == "index"}]
    nav += [
        {"title": s.title, "href": up + s.href, "current": page.section == s.key}
        for s in sections_of(report)
    ]
    template = env.get_template(page.template)
    return template.render(
        page_title=page.title,
        site_title=report.summary.name,
        root=up + home,
        home=up,
        nav=nav,
        charts=page.charts,
        version=VERSION,
        **page.context,
    )


def write_assets(root: Path) -> None:
    """The one shared Vega bundle and our stylesheet and script, so no page needs a network."""
    assets = root / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "vega.js").write_text(vl_convert.javascript_bundle(), encoding="utf-8")
    for name in ("style.css", "report.js"):
        shutil.copyfile(templates_dir() / "assets" / name, assets / name)
    (root / ".nojekyll").write_text("", encoding="utf-8")


def write_model_folder(report: ModelReport, folder: Path, home: str = "",
                       options: SiteOptions | None = None,
                       exporters: list[Callable[[ModelReport, Path], None]] | None = None) -> None:
    """Write one model's pages and exports into `folder`; assets live at `folder/home`."""
    options = options or SiteOptions()
    env = make_environment()
    for builder in PAGE_BUILDERS:
        for page in builder(report, options):
            target = folder / page.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_page(env, page, report, home), encoding="utf-8")
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for export in exporters or []:
        export(report, data)


def write_report_json(report: ModelReport, data: Path) -> None:
    payload = {
        "model": report.summary.__dict__,
        "options": report.options,
        "timings_seconds": report.timings,
        "notes": report.notes,
        "reportgen_version": VERSION,
    }
    (data / "report.json").write_text(
        json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )


def check_output_folder(out: Path) -> None:
    """Refuse to replace a folder that is not a report of ours: it may hold the user's work."""
    if out.exists() and not out.is_dir():
        raise ReportgenError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MARKER).exists():
        raise ReportgenError(
            f"{out}: exists, is not empty and is not a reportgen report; choose another --out "
            "or empty it"
        )


def clean_leftovers(out: Path) -> None:
    """Remove the temporary folders of an earlier run that was killed before it could."""
    for leftover in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in out.parent.glob(f".{out.name}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out` in two renames."""
    out = Path(out).absolute()
    check_output_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out)
    temporary = out.parent / f".{out.name}.tmp-{os.getpid()}"
    temporary.mkdir()
    (temporary / SITE_MARKER).write_text("reportgen\n", encoding="utf-8")
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    temporary.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def write_site(report: ModelReport, out: Path, options: SiteOptions | None = None) -> Path:
    """A one-model site: the model's report at the top of `out`."""
    with atomic_folder(out) as folder:
        write_assets(folder)
        write_model_folder(report, folder, "", options, [write_report_json])
    return Path(out)
