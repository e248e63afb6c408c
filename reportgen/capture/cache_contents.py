"""What the capture cache holds, for `reportgen cache list` and `reportgen cache clear` and for
the last lines of a run: a cache of captures grows unseen otherwise (ten reports of WikiText-2
models left 644 MB). Only folders that reportgen marked as its own are counted, listed or
removed (see `capture_cache`): the cache folder may be one of the user's.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from reportgen.capture.cache import META, is_ours, last_used, remove_if_ours
from reportgen.errors import ReportgenError


@dataclass
class EntryInfo:
    """One entry of the capture cache, as `reportgen cache list` shows it."""

    path: Path
    size: int  # bytes of its files, the analyses stored beside it included
    last_used: float  # seconds since the epoch
    n_tokens: int | None
    checkpoint: str  # the path a run read it from, or "" when the entry does not say
    text: str


def tree_size(folder: Path) -> int:
    """Bytes of every file under `folder`; 0 for one that another run removed meanwhile."""
    try:
        return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()
                   and not path.is_symlink())
    except OSError:
        return 0


def cache_entries(folder: Path) -> list[EntryInfo]:
    """Every entry reportgen made in `folder` (marked; pending ones left out), most recently
    used first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".") or not is_ours(path):
            continue
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        sources = meta.get("sources") if isinstance(meta.get("sources"), dict) else {}
        n_tokens = meta.get("n_tokens")
        found.append(EntryInfo(path, tree_size(path), last_used(path),
                               n_tokens if isinstance(n_tokens, int) else None,
                               str(sources.get("checkpoint", "")), str(sources.get("text", ""))))
    return sorted(found, key=lambda info: -info.last_used)


def clear_cache(folder: Path, older_than_days: float | None = None,
                now: float | None = None) -> list[EntryInfo]:
    """Remove reportgen's entries from `folder` (those last used more than `older_than_days`
    ago, when given); a folder without reportgen's marker is never touched. Returns what went."""
    if older_than_days is not None and not (math.isfinite(older_than_days)
                                            and older_than_days >= 0):
        raise ReportgenError(f"--older-than must be a number of days, 0 or more, not "
                             f"{older_than_days!r}")
    now = time.time() if now is None else now
    removed = []
    for info in cache_entries(folder):
        if older_than_days is None or now - info.last_used > older_than_days * 86400:
            remove_if_ours(info.path)
            removed.append(info)
    return removed


def format_size(size: int) -> str:
    """Bytes in the unit that reads best: 512 B, 3.4 MB, 1.2 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def cache_summary(folder: Path) -> str:
    """`FOLDER holds N captures, SIZE`: what a run says at its end."""
    entries = cache_entries(folder)
    total = sum(info.size for info in entries)
    noun = "capture" if len(entries) == 1 else "captures"
    return f"{folder} holds {len(entries)} {noun}, {format_size(total)}"

