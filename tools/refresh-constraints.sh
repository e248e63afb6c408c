#!/usr/bin/env bash
# Refresh constraints.txt with the newest releases of every dependency.
#
# Builds a throw-away virtual environment, installs torch==2.13.0 and then the project with its
# test extra WITHOUT constraints (so pip picks the newest releases the pyproject ranges allow),
# and writes `pip freeze --exclude-editable` of it, less the project itself, pip, setuptools and
# wheel, to constraints.txt. Run the tests (python -m pytest) against the new pins before
# committing the file.
#
# Usage: tools/refresh-constraints.sh            (PYTHON=python3.12 ... picks the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TORCH="torch==2.13.0"

venv="$(mktemp -d "${TMPDIR:-/tmp}/reportgen-constraints.XXXXXX")"
tmp="constraints.txt.tmp.$$"
trap 'rm -rf "$venv" "$tmp"' EXIT

"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install -q "$TORCH"
"$venv/bin/python" -m pip install -q -e ".[test]"

# Drop the project and the packaging tools; drop local version labels (torch's +cpu), which
# PyPI does not serve, so that the pin matches PyPI's build and a CPU index's build alike.
pins="$venv/pins.txt"
"$venv/bin/python" -m pip freeze --exclude-editable \
  | grep -viE '^(lstm[-_.]reportgen|pip|setuptools|wheel)([=@ ]|$)' \
  | sed -E 's/^([A-Za-z0-9._-]+==[^+;[:space:]]+)\+[A-Za-z0-9.]+/\1/' \
  > "$pins"
if bad="$(grep -vE '^[A-Za-z0-9._-]+==[^[:space:]]+$' "$pins")"; then
  echo "refresh-constraints: pip freeze gave lines that are not exact pins:" >&2
  echo "$bad" >&2
  exit 1
fi

python_version="$("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
{
  echo "# Exact versions of every package that \`pip install -e \".[test]\"\` pulls in once $TORCH is"
  echo "# installed, for a set-up that stays green: pip install -c constraints.txt -e \".[test]\""
  echo "# Made by tools/refresh-constraints.sh on $(date -u +%Y-%m-%d) with Python $python_version: a throw-away"
  echo "# venv, $TORCH, then -e \".[test]\" without constraints (the newest releases), then"
  echo "# pip freeze --exclude-editable less the project, pip, setuptools and wheel; local version"
  echo "# labels such as torch's +cpu are dropped so that PyPI's build and a CPU build both match."
  echo "# The tests (python -m pytest) must pass with these pins before this file is committed."
  cat "$pins"
} > "$tmp"
mv "$tmp" constraints.txt
echo "constraints.txt: $(wc -l < "$pins") pins written; now run python -m pytest before committing it"
