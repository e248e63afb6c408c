"""A report is either the earlier one or the new one, never half of each; and the same inputs
and seed give the same bytes, on any day, on any machine, from any folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from clitools import file_digests, finish, run_cli, start_cli, temporary_folders, wait_for

import reportgen
from reportgen.render.atomic import SITE_MARKER, atomic_folder, clean_leftovers
from reportgen.render.pages import SiteOptions
from reportgen.runs.report import ReportConfig, build_report

DEAD_PID = 2**22 + 12345  # above Linux's largest pid: no process has it
TIMINGS = "timings_seconds"
RUN_SPECIFIC = (TIMINGS, "capture_reused_from_cache", "analyses_reused_from_cache")  # may differ


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
    earlier = tmp_path / f".report.old-{DEAD_PID}"
    half_written = tmp_path / f".report.tmp-{DEAD_PID}"
    for folder in (earlier, half_written):
        folder.mkdir()
        (folder / SITE_MARKER).write_text("reportgen\n", encoding="utf-8")
    (earlier / "index.html").write_text("earlier", encoding="utf-8")
    clean_leftovers(out)
    assert (out / "index.html").read_text(encoding="utf-8") == "earlier"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report"]


def leftover(folder: Path, content: str) -> Path:
    folder.mkdir()
    (folder / SITE_MARKER).write_text("reportgen\n", encoding="utf-8")
    (folder / "index.html").write_text(content, encoding="utf-8")
    return folder


def test_cleaning_up_takes_out_literally_not_as_a_pattern(tmp_path: Path) -> None:
    """`--out 'r[B]'` once deleted `.rB.old-*`, the only copy of another report after a crash."""
    others = leftover(tmp_path / f".rB.old-{DEAD_PID}", "report rB")
    clean_leftovers(tmp_path / "r[B]")
    assert (others / "index.html").read_text(encoding="utf-8") == "report rB"
    assert not (tmp_path / "r[B]").exists()
    mine = leftover(tmp_path / f".r[B].old-{DEAD_PID}", "report r[B]")
    clean_leftovers(tmp_path / "r[B]")
    assert not mine.exists()
    assert (tmp_path / "r[B]" / "index.html").read_text(encoding="utf-8") == "report r[B]"
    assert (others / "index.html").read_text(encoding="utf-8") == "report rB"


def test_cleaning_up_leaves_the_folders_of_a_run_still_going(tmp_path: Path) -> None:
    """Two runs into the same --out: the second must not delete the first's temporary folder,
    nor put back the earlier report the first has just moved aside to swap its own in."""
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        out = tmp_path / "report"
        working = leftover(tmp_path / f".report.tmp-{running.pid}", "half written")
        moved_aside = leftover(tmp_path / f".report.old-{running.pid}", "earlier")
        clean_leftovers(out)
        assert working.is_dir() and moved_aside.is_dir() and not out.exists()
    finally:
        running.kill()
        running.wait()
    clean_leftovers(out)  # its process is gone: what it left is cleaned up
    assert not working.exists() and not moved_aside.exists()
    assert (out / "index.html").read_text(encoding="utf-8") == "earlier"


def test_cleaning_up_removes_only_folders_reportgen_made(tmp_path: Path) -> None:
    """A folder of the user's that happens to be named like a leftover is not ours to delete."""
    users = tmp_path / f".report.tmp-{DEAD_PID}"
    users.mkdir()
    (users / "notes.txt").write_text("mine", encoding="utf-8")
    clean_leftovers(tmp_path / "report")
    assert (users / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_a_run_that_swaps_in_between_our_two_renames_does_not_fail_ours(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs into one --out: when the other run's report lands at OUT just after this run
    moved the earlier one aside, this run still swaps its own in (the last one wins) and
    leaves no folder behind."""
    out = leftover(tmp_path / "report", "earlier")
    real_rename = Path.rename
    raced: list[Path] = []

    def racing_rename(self: Path, target: Path) -> Path:
        moved = real_rename(self, target)
        if Path(target).name.startswith(".report.old-") and not raced:
            raced.append(leftover(out, "the other run's"))
        return moved

    monkeypatch.setattr(Path, "rename", racing_rename)
    with atomic_folder(out) as folder:
        (folder / "index.html").write_text("this run's", encoding="utf-8")
    assert raced
    assert (out / "index.html").read_text(encoding="utf-8") == "this run's"
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



def test_an_out_that_is_a_link_leaves_no_link_behind_and_its_target_as_it_was(tmp_path: Path):
    from reportgen.render.atomic import swap_in

    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "index.html").write_text("earlier report", encoding="utf-8")
    out = tmp_path / "report"
    out.symlink_to(target, target_is_directory=True)
    new = tmp_path / ".report.tmp-1"
    new.mkdir()
    (new / "index.html").write_text("new report", encoding="utf-8")
    swap_in(new, out)
    assert out.is_dir() and not out.is_symlink()
    assert (out / "index.html").read_text(encoding="utf-8") == "new report"
    assert (target / "index.html").read_text(encoding="utf-8") == "earlier report"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["elsewhere", "report"]
