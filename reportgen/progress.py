"""Progress lines on stderr for the long stages, silent when quiet or not on a terminal."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@dataclass
class Progress:
    """`with Progress("capture", total=T, unit="tokens") as bar: bar.advance(n)`.

    Redraws at most ten times a second, so it costs nothing next to the work it reports.
    """

    label: str
    total: int | None = None
    unit: str = ""
    enabled: bool = field(default_factory=stderr_is_terminal)
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    done: int = 0
    _start: float = field(default=0.0, init=False)
    _last_draw: float = field(default=0.0, init=False)

    def __enter__(self) -> Progress:
        self._start = time.perf_counter()
        self._draw(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._draw(force=True)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self._last_draw < 0.1):
            return
        self._last_draw = now
        elapsed = now - self._start
        settled = elapsed > 0.5 or (self.done > 0 and self.done == self.total)
        rate = f", {self.done / elapsed:,.0f} {self.unit}/s" if settled and self.unit else ""
        of = f"/{self.total:,}" if self.total else ""
        self.stream.write(f"\r{self.label}: {self.done:,}{of} {self.unit}{rate}, {elapsed:.0f} s  ")
        self.stream.flush()


def progress_enabled(progress: bool | None) -> dict[str, bool]:
    """`Progress` keyword for a caller's `progress` flag: None leaves it to the terminal test."""
    return {} if progress is None else {"enabled": progress}


def note(message: str, enabled: bool = True) -> None:
    """A one-off status line for a step that has no count (rendering, writing)."""
    if enabled:
        print(message, file=sys.stderr, flush=True)
