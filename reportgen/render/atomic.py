"""Atomic report folders: a report is built in a temporary folder beside OUT and swapped in
only when complete, so a failed or interrupted run never leaves a half-written report and never
harms an earlier one. Only folders that carry our marker are ever replaced or deleted.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reportgen.capture.cache import process_is_alive
from reportgen.errors import ReportgenError

SITE_MARKER = ".reportgen-site"  # marks a folder as ours, so a re-run may replace it


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
