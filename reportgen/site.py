"""Site: render a `ModelReport` into a folder of light static pages, written atomically.

Pages are Jinja2 templates rendered with autoescape on; chart specs reach the page as JSON via
`|tojson` inside `<script type="application/json">`, which escapes `<`, `>` and `&`, so corpus
text can never close the tag. The folder is built beside the target and swapped in only when
complete, so a failed or interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from types import ModuleType

import jinja2
import numpy as np
import vl_convert

from reportgen import comparable
from reportgen.analysis.comparison import Comparison
from reportgen.analysis.distributions import NEAR_ZERO_SHARE
from reportgen.analysis.gates import LEFT, RIGHT
from reportgen.analysis.histograms import BIN_WIDTH, NEAR_ZERO_BOUND
from reportgen.capture_cache import process_is_alive
from reportgen.charts import CANVAS_ABOVE
from reportgen.errors import ReportgenError
from reportgen.heatmap import signed
from reportgen.images import IMAGE_FOLDER, write_images, write_svg_and_png
from reportgen.pages import comparison as comparison_page
from reportgen.pages import (Page, Section, SiteOptions, clusters, concepts, expectancy, gates,
                             neurons, overview)
from reportgen.pages.comparison import Relations
from reportgen.pages.unit_matches import alignment_prefix
from reportgen.progress import Progress, progress_enabled
from reportgen.results import ModelReport
from reportgen.versions import reportgen_version

SITE_MARKER = ".reportgen-site"  # marks a folder as ours, so a re-run may replace it


SECTIONS: list[ModuleType] = [expectancy, neurons, gates, concepts, clusters]  # in nav order


def templates_dir() -> Path:
    """Templates ship inside the wheel as `reportgen/templates`; a checkout has them at the top."""
    packaged = Path(str(resources.files("reportgen"))) / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


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


def check_output_folder(out: Path) -> None:
    """Refuse to replace a folder that is not a report of ours: it may hold the user's work."""
    if out.exists() and not out.is_dir():
        raise ReportgenError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MARKER).exists():
        raise ReportgenError(
            f"{out}: exists, is not empty and is not a reportgen report; choose another --out "
            "or empty it"
        )
    report = enclosing_report(out)
    if report is not None:
        raise ReportgenError(
            f"--out {out} lies inside the reportgen report {shown(report)}, which the next run "
            "into it replaces whole; choose an --out outside it"
        )


def enclosing_report(out: Path) -> Path | None:
    """The nearest folder above `out` that holds a reportgen report (our marker), if any."""
    for parent in Path(out).absolute().resolve().parents:
        if (parent / SITE_MARKER).is_file():
            return parent
    return None


def shown(path: Path) -> str:
    """`path` relative to the working folder when it lies under it, else as it is."""
    try:
        return str(Path(path).relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def leftovers(out: Path, kind: str) -> list[Path]:
    """The `.OUT.tmp-PID` (kind "tmp") or `.OUT.old-PID` ("old") folders of runs that died.

    Names are matched exactly, never as a glob pattern (OUT may hold `[`, `*` or `?`), and a
    folder whose process is still alive belongs to a run still going, into the same OUT.
    """
    prefix = f".{out.name}.{kind}-"
    try:
        names = os.listdir(out.parent)
    except OSError:
        return []
    found = []
    for name in names:
        pid = name[len(prefix):]
        if name.startswith(prefix) and pid.isdigit() and not process_is_alive(int(pid)):
            found.append(out.parent / name)
    return sorted(found)


def is_site_folder(folder: Path) -> bool:
    """A real folder holding our marker, or an empty one: reportgen's to replace or delete."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    return (folder / SITE_MARKER).exists() or not any(folder.iterdir())


def clean_leftovers(out: Path) -> None:
    """Remove the temporary folders of an earlier run that was killed before it could.

    A run killed between its two renames left the earlier report as `.OUT.old-PID` and no OUT:
    that report is put back first. Only folders of dead runs that carry our marker are touched.
    """
    earlier = [path for path in leftovers(out, "old") if is_site_folder(path)]
    if earlier and not out.exists() and not out.is_symlink():
        earlier[0].rename(out)
    for leftover in leftovers(out, "tmp") + leftovers(out, "old"):
        if is_site_folder(leftover):
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
    try:
        (temporary / SITE_MARKER).write_text("reportgen\n", encoding="utf-8")
        yield temporary
        swap_in(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


SWAP_TRIES = 20


def discard(old: Path) -> None:
    """Delete the report moved aside; when OUT was a symbolic link, only the link goes, and the
    folder it pointed to is left as it was."""
    if old.is_symlink():
        old.unlink(missing_ok=True)
    else:
        shutil.rmtree(old, ignore_errors=True)


def swap_in(temporary: Path, out: Path) -> None:
    """Move the report at `out` aside, rename `temporary` to `out`, delete the old one.

    Another run into the same OUT may swap its report in between our two renames; then ours is
    renamed in over it on the next try (the run that finishes last wins).
    """
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    for _ in range(SWAP_TRIES):
        if old.exists() or old.is_symlink():  # what another run swapped in: superseded by ours
            discard(old)
        if out.exists() or out.is_symlink():
            try:
                out.rename(old)
            except FileNotFoundError:  # the other run moved it aside meanwhile
                pass
        try:
            temporary.rename(out)
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                continue
            if old.exists() and not out.exists():
                old.rename(out)  # put the earlier report back
            raise
        discard(old)
        return
    raise ReportgenError(f"{out}: other runs kept replacing this folder while this one tried to "
                         "write it; run one report into an --out at a time")


def write_site(report: ModelReport, out: Path, options: SiteOptions | None = None,
               progress: bool | None = False) -> Path:
    """A one-model site: the model's report at the top of `out`."""
    with atomic_folder(out) as folder:
        write_assets(folder)
        write_model_folder(report, folder, "", options, progress)
    return Path(out)


def write_comparison(comparison: Comparison, folder: Path, title: str,
                     options: SiteOptions | None = None,
                     relations: Relations | None = None) -> None:
    """The top of a comparison site: `index.html`, the `alignment/` pages, `data/comparison.csv`,
    `alignment.csv`, `similarity.csv` and the `img/` figures of the comparison page.

    The models' own folders are written beside it first, by `write_model_folder(...,
    home="../")`, so that the alignment pages can link the unit pages they hold.
    """
    options = options or SiteOptions()
    pages = comparison_page.pages(comparison, title, folder, relations)
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
