"""A report is either the earlier one or the new one, never half of each; and the same inputs
and seed give the same bytes, on any day, on any machine, from any folder."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import reportgen
from clitools import file_digests, finish, run_cli, start_cli, temporary_folders, wait_for
from reportgen.pages import SiteOptions
from reportgen.report import ReportConfig, build_report
from reportgen.site import SITE_MARKER, clean_leftovers

TIMINGS = "timings_seconds"
RUN_SPECIFIC = (TIMINGS, "capture_reused_from_cache")  # the parts of a site two runs may differ in


def report_config(checkpoint: Path, data: Path, out: Path) -> ReportConfig:
    return ReportConfig(checkpoint, out, data=data, max_tokens=300, quiet=True, embed_states=(),
                        site=SiteOptions(top_neurons=1))


def test_killed_render_leaves_the_earlier_report_and_the_next_run_cleans_up(
        tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    config = report_config(tiny_model, tiny_corpus, out)
    build_report(config)
    before = file_digests(out)
    marker = tmp_path / "stalled"
    args = ["report", str(tiny_model), "--data", str(tiny_corpus), "--max-tokens", "300",
            "--top-neurons", "1", "--no-clusters", "--quiet", "--out", str(out)]
    process = start_cli(args, tmp_path, fault=f"stall:{marker}")
    wait_for(marker.exists, process)
    [half_written] = temporary_folders(out)
    assert (half_written / "assets" / "vega.js").stat().st_size > 100_000  # rendering began
    process.send_signal(signal.SIGKILL)
    assert finish(process).returncode == -signal.SIGKILL
    assert file_digests(out) == before
    assert half_written.is_dir()  # SIGKILL leaves no chance to clean up...
    build_report(config)
    assert temporary_folders(out) == []  # ...so the next run does
    assert file_digests(out).keys() == before.keys()


def test_a_run_killed_between_its_two_renames_gets_the_earlier_report_back(
        tmp_path: Path) -> None:
    out = tmp_path / "report"
    earlier = tmp_path / ".report.old-4242"
    half_written = tmp_path / ".report.tmp-4242"
    for folder in (earlier, half_written):
        folder.mkdir()
        (folder / SITE_MARKER).write_text("reportgen\n", encoding="utf-8")
    (earlier / "index.html").write_text("earlier", encoding="utf-8")
    clean_leftovers(out)
    assert (out / "index.html").read_text(encoding="utf-8") == "earlier"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report"]


def comparable(site: Path) -> dict[str, object]:
    """Every file's digest, with report.json read as data and its run-specific parts left out."""
    files: dict[str, object] = dict(file_digests(site))
    summary = json.loads((site / "data" / "report.json").read_text(encoding="utf-8"))
    assert set(summary[TIMINGS]) >= {"capture", "load", "render"}
    for varies in RUN_SPECIFIC:
        del summary[varies]
    files["data/report.json"] = summary
    return files


def machine_specific_strings(*paths: Path) -> list[str]:
    """What must never reach a page: absolute paths of this run, and today's date."""
    repository = Path(reportgen.__file__).resolve().parent.parent
    folders = {*paths, repository, Path.home(), Path.cwd()}
    return sorted({str(path) for path in folders if len(path.parts) > 2} |
                  {time.strftime("%Y-%m-%d"), time.strftime("%d %b %Y")})


def test_two_runs_give_byte_identical_sites(tiny_model: Path, tiny_corpus: Path,
                                            tmp_path: Path) -> None:
    """Two processes with different hash seeds, working folders, output paths and host names,
    t-SNE maps included, must write the same bytes except report.json's timings."""
    runs = [("first", "site", "1", "reportgen-host-one"),
            ("second", "elsewhere", "2", "reportgen-host-two")]

    def run(folder: str, out: str, hash_seed: str, host: str):
        (tmp_path / folder).mkdir()
        args = ["report", str(tiny_model), "--data", str(tiny_corpus), "--max-tokens", "300",
                "--max-points", "150", "--top-neurons", "2", "--quiet", "--out", out]
        return run_cli(args, tmp_path / folder, host=host, env={"PYTHONHASHSEED": hash_seed})

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        results = list(pool.map(lambda r: run(*r), runs))
    for result in results:
        assert result.returncode == 0, result.stderr
    first, second = tmp_path / "first" / "site", tmp_path / "second" / "elsewhere"
    assert (first / "clusters.html").is_file()
    assert comparable(first) == comparable(second)
    forbidden = machine_specific_strings(tmp_path, tiny_model.parent, tiny_corpus)
    forbidden += [host for *_, host in runs]
    for path in first.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            found = [s for s in forbidden if s in text]
            assert not found, (path, found)

