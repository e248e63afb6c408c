"""Site: render a `ModelReport` into a folder of light static pages, written atomically
(see `reportgen.render.atomic`).

Pages are Jinja2 templates rendered with autoescape on; chart specs reach the page as JSON via
`|tojson` inside `<script type="application/json">`, which escapes `<`, `>` and `&`, so corpus
text can never close the tag. The folder is built beside the target and swapped in only when
complete, so a failed or interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import functools
import math
import shutil
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import ModuleType

import jinja2
import numpy as np
import vl_convert

from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.comparison import Comparison
from reportgen.analysis.distributions import NEAR_ZERO_SHARE
from reportgen.analysis.gates import LEFT, RIGHT
from reportgen.analysis.histograms import BIN_WIDTH, NEAR_ZERO_BOUND
from reportgen.analysis.paged_units import decide_paged_units
from reportgen.charts import CANVAS_ABOVE
from reportgen.progress import Progress, progress_enabled
from reportgen.render import comparable
from reportgen.render.atomic import atomic_folder
from reportgen.render.heatmap import signed
from reportgen.render.images import IMAGE_FOLDER, write_images, write_svg_and_png
from reportgen.render.pages import (
    Page,
    Section,
    SiteOptions,
    agreement,
    clusters,
    concepts,
    expectancy,
    gates,
    neurons,
    overview,
)
from reportgen.render.pages import comparison as comparison_page
from reportgen.render.pages.comparison import Relations
from reportgen.render.pages.unit_matches import alignment_prefix
from reportgen.versions import reportgen_version

SECTIONS: list[ModuleType] = [expectancy, neurons, gates, concepts, clusters,
                              agreement]  # in nav order


def templates_dir() -> Path:
    """Templates ship inside the wheel as `reportgen/templates`; a checkout has them at the top."""
    packaged = Path(str(resources.files("reportgen"))) / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


def thousands(value: int) -> str:
    return f"{value:,}"


def infinite(value: object) -> bool:
    """The `is infinite` test: `number` writes such a value as ∞ (a time constant of a gate
    that is exactly 1), never as "inf"."""
    return isinstance(value, (float, np.floating)) and math.isinf(value)


def page_constants() -> dict[str, float]:
    """The analyses' constants that pages state in words, and the one report.js reads from the
    page (`canvas_above`, on its script tag): every template sees them as globals, so that a
    page cannot state a rule other than the one the numbers were computed with."""
    return {
        "bin_width": BIN_WIDTH,  # neurons.html: the histograms' bins
        "near_zero_bound": NEAR_ZERO_BOUND,  # the near-zero rule: neurons and comparison pages
        "near_zero_share": NEAR_ZERO_SHARE,
        "gate_left": LEFT,  # gate saturation, on the gates page and each unit's page
        "gate_right": RIGHT,
        "canvas_above": CANVAS_ABOVE,  # points above which report.js draws a chart on canvas
    }


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
    env.filters["signed"] = signed
    env.tests["infinite"] = infinite
    env.globals.update(page_constants())
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": True,
                                         "separators": (",", ":")}
    return env


def sections_of(report: ModelReport) -> list[Section]:
    """The sections this report has, in nav order."""
    return [item for module in SECTIONS if (item := module.section(report)) is not None]


def all_pages(report: ModelReport, options: SiteOptions) -> list[Page]:
    found = [module for module in SECTIONS if module.section(report) is not None]
    return overview.pages(report, options, sections_of(report)) + [
        page for module in found for page in module.pages(report, options)
    ]


def render_page(env: jinja2.Environment, page: Page, report: ModelReport, home: str) -> str:
    """`home` is the relative path from the model folder to the site root ("" or "../")."""
    depth = page.path.count("/")
    up = "../" * depth
    nav = [{"title": "Overview", "href": up + "index.html", "current": page.section == "index"}]
    if home:  # a model of a comparison site: the way back to the comparison
        nav.insert(0, {"title": "All models", "href": up + home + "index.html", "current": False})
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
        version=reportgen_version(),
        alignment_prefix=f"{up}{home}{alignment_prefix(report.summary.name)}" if home else "",
        **page.context,
    )


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed in one offline script; building it takes about 4 s."""
    return vl_convert.javascript_bundle()


def write_assets(root: Path) -> None:
    """The one shared Vega bundle and our stylesheet and script, so no page needs a network."""
    assets = root / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "vega.js").write_text(vega_bundle(), encoding="utf-8")
    for name in ("style.css", "report.js"):
        shutil.copyfile(templates_dir() / "assets" / name, assets / name)
    (root / ".nojekyll").write_text("", encoding="utf-8")


def write_model_folder(report: ModelReport, folder: Path, home: str = "",
                       options: SiteOptions | None = None, progress: bool | None = False) -> None:
    """Write one model's pages and exports into `folder`; assets live at `folder/home`.

    `progress` None shows the pages and figures written on stderr when it is a terminal.
    `report.json` is written last, so that it holds the time this rendering took.
    """
    started = time.perf_counter()
    options = options or SiteOptions()
    if report.paged is None and report.distributions is not None:  # built by hand, not analyse()
        report.paged = decide_paged_units(report.distributions, report.concepts,
                                          options.top_neurons, report.number_units)
    env = make_environment()
    pages = all_pages(report, options)
    with Progress("pages", len(pages), "pages", **progress_enabled(progress)) as bar:
        for page in pages:
            target = folder / page.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_page(env, page, report, home), encoding="utf-8")
            bar.advance()
    if options.images:
        write_images(report, pages, folder / IMAGE_FOLDER, env, options, progress)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for module in SECTIONS:
        if module.section(report) is not None:
            module.export(report, data)
    comparable.export(report, data, options.comparison_positions)
    report.timings["render"] = round(time.perf_counter() - started, 3)
    overview.export(report, data)


def write_site(report: ModelReport, out: Path, options: SiteOptions | None = None,
               progress: bool | None = False) -> Path:
    """A one-model site: the model's report at the top of `out`."""
    with atomic_folder(out) as folder:
        write_assets(folder)
        write_model_folder(report, folder, "", options, progress)
    return Path(out)


def write_comparison(comparison: Comparison, folder: Path, title: str,
                     options: SiteOptions | None = None,
                     relations: Relations | None = None,
                     without_states: Sequence[str] = ()) -> None:
    """The top of a comparison site: `index.html`, the `alignment/` pages, `data/comparison.csv`,
    `alignment.csv`, `similarity.csv` and the `img/` figures of the comparison page.

    The models' own folders are written beside it first, by `write_model_folder(...,
    home="../")`, so that the alignment pages can link the unit pages they hold.
    """
    options = options or SiteOptions()
    pages = comparison_page.pages(comparison, title, folder, relations, without_states)
    env = make_environment()
    for page in pages:
        up = "../" * page.path.count("/")
        html = env.get_template(page.template).render(
            page_title=page.title, site_title=title, root=up, home=up,
            nav=[{"title": "Comparison", "href": up + comparison_page.PAGE,
                  "current": page.path == comparison_page.PAGE}],
            charts=page.charts, version=reportgen_version(), alignment_prefix="", **page.context,
        )
        (folder / page.path).parent.mkdir(parents=True, exist_ok=True)
        (folder / page.path).write_text(html, encoding="utf-8")
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    comparison_page.export(comparison, data, relations)
    if options.images:
        images = folder / IMAGE_FOLDER
        images.mkdir(parents=True, exist_ok=True)
        for chart in pages[0].charts:
            write_svg_and_png(vl_convert.vegalite_to_svg(chart.spec), images, chart.image_name)
