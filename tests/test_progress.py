"""Progress on stderr: bars with rates on a terminal, none with --quiet or when stderr is a pipe."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest
from clitools import child_environment, cli_command, on_one_core, run_cli

from reportgen.runs.demo import DEMO_TIME


def report_args(tiny_model: Path, tiny_corpus: Path, out: str) -> list[str]:
    return ["report", str(tiny_model), "--data", str(tiny_corpus), "--out", out,
            "--max-tokens", "400", "--maps", "L1-h", "--no-cache"]


def run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as in a user's shell; returns what the
    terminal received."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(cli_command(args), cwd=cwd, env=child_environment(),
                               preexec_fn=on_one_core(), stdout=subprocess.DEVNULL,
                               stderr=terminal)
    os.close(terminal)
    received = bytearray()
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(controller)
    return process.wait(timeout=300), received.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def on_terminal(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("progress")
    status, shown = run_on_a_terminal(report_args(tiny_model, tiny_corpus, "report"), cwd)
    assert status == 0, shown
    return shown


@pytest.mark.parametrize("bar", [
    r"capture: 400/400 tokens, [\d,]+ tokens/s",
    r"concepts: 96/96 neurons",
    r"t-SNE L1-h: 750/750 iterations",
    r"pages: (\d+)/\1 pages",
    r"figures: (\d+)/\1 charts",
])
def test_long_stages_show_progress_on_a_terminal(on_terminal: str, bar: str) -> None:
    assert re.search(bar, on_terminal), on_terminal


def test_quiet_shows_nothing_on_a_terminal(tiny_model: Path, tiny_corpus: Path,
                                           tmp_path: Path) -> None:
    status, shown = run_on_a_terminal(
        [*report_args(tiny_model, tiny_corpus, "report"), "--quiet"], tmp_path)
    assert status == 0 and shown == ""


def test_a_pipe_gets_stage_lines_but_no_bars(tiny_model: Path, tiny_corpus: Path,
                                             tmp_path: Path) -> None:
    result = run_cli(report_args(tiny_model, tiny_corpus, "report"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "tokens/s" not in result.stderr
    assert "capture..." in result.stderr
    # each stage's line is followed by one with the seconds it took, as report.json has them
    timings = json.loads((tmp_path / "report" / "data" / "report.json").read_text(
        encoding="utf-8"))["timings_seconds"]
    lines = result.stderr.splitlines()
    started = [line.removesuffix("...") for line in lines if line.endswith("...")]
    took = dict(re.findall(r"^(.+): (\d+\.\d) s", result.stderr, re.M))
    assert {"load", "capture", "distributions", "t-SNE L1-h", "render"} <= set(started)
    assert set(started) == set(took)
    for stage, seconds in took.items():
        assert float(seconds) == pytest.approx(timings[stage], abs=0.051), stage
    assert re.search(r"^render: \d+\.\d s; \d+ s in all$", result.stderr, re.M)


def test_help_gives_one_time_for_the_demo() -> None:
    """`reportgen --help` and `reportgen demo --help` give the demo's time as demo.DEMO_TIME
    says it, and no other estimate."""
    shown = " ".join(" ".join(run_cli(args, Path.cwd()).stdout.split())
                     for args in (["--help"], ["demo", "--help"]))
    assert shown.count(DEMO_TIME) == 2
    assert re.findall(r"about [^,;)]*minute", shown.replace(DEMO_TIME, "")) == []
