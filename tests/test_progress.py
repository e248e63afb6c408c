"""Progress on stderr: bars with rates on a terminal, none with --quiet or when stderr is a pipe."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

import pytest

from clitools import child_environment, cli_command, on_one_core, run_cli


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
