"""`reportgen --version` prints the installed distribution's version and exits 0."""

import subprocess
import sys
from importlib import metadata


def test_version_flag_prints_the_distribution_version():
    result = subprocess.run([sys.executable, "-m", "reportgen", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"reportgen {metadata.version('lstm-reportgen')}\n"
    assert result.stderr == ""
