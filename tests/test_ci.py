"""`.ci/run` fails when no test runs: it runs `python3 -m pytest` under `set -e`, so pytest's
status 5 ("no tests collected") must reach the shell, not be turned into 0 by a hook or addopts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_a_run_that_selects_no_test_exits_non_zero() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-k", "nothing_matches_this"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout[-500:]


def test_ci_runs_pytest_under_set_e_with_nothing_after_it_to_mask_its_status() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in script
    commands = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert commands[-1] == "python3 -m pytest"

