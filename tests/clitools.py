"""Run the `reportgen` command in a child process, as a user would, and read what it says.

Two ways to run it:
- `run_cli` and `start_cli` start `python -m reportgen.cli.main ARGS` afresh, as a user does. Each
  such process spends about two seconds of CPU importing torch, pandas and altair.
- `CliServer` starts one process that imports the CLI once and then forks a fresh child for
  each run. The child is a process of its own, with its own exit status, stdout and stderr, and
  runs the same `main(argv)`; it costs tens of milliseconds instead of seconds, which is what
  lets a catalogue of forty bad inputs run in seconds on two cores. A test module gets one
  for all its tests as the `cli` fixture of `conftest.py`.

Every child runs on one core of its own. With more threads than free cores, torch's and
openTSNE's thread pools spin: on a loaded 2-core machine the capture of 300 tokens took 2.5 s
instead of 0.016 s, and t-SNE of 300 points 47 s instead of 1 s.

A run can be given a fault, by name, that strikes its writes inside its `.OUT.tmp-*` folder:
- `enospc`: the first write of a page (`*.html`) fails with OSError(ENOSPC), as on a full disk,
  after the assets are written;
- `eacces`: the first write of any file fails with PermissionError(EACCES), as in a folder
  whose permissions forbid it (a test running as root cannot set that up for real);
- `stall:MARKER`: the first write of a page creates the file MARKER and then sleeps, so that a
  test can signal the run in mid-render, after the assets are written and before any page is.
The faults patch `open` itself, so they hold however the site module writes its files. A run
can also be given a host name, which `socket.gethostname`, `os.uname` and `platform.node`
then return, to show that nothing in a report depends on the machine's name.

As a script: `python tests/clitools.py [FAULT] [host:NAME] -- ARGS...` runs the CLI once so,
and `python tests/clitools.py serve` is the server.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import itertools
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLITOOLS = Path(__file__).resolve()
STALL_SECONDS = 120  # far longer than any test waits for a stalled run
FAULTS = ("enospc", "eacces")  # and "stall:MARKER"

_cores = itertools.cycle(sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else [None])


@dataclass
class CliResult:
    """What a run of the command left: its exit status and its two streams."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    peak_rss_kb: int | None = None  # the child's peak resident memory, from a CliServer

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra or {})}


def on_one_core() -> Callable[[], None] | None:
    """A `preexec_fn` that pins the child to the next core in turn."""
    core = next(_cores)
    return None if core is None else (lambda: os.sched_setaffinity(0, {core}))


def cli_command(args: list[str], fault: str | None = None, host: str | None = None) -> list[str]:
    if fault is None and host is None:
        return [sys.executable, "-m", "reportgen.cli.main", *args]
    options = [fault] if fault else []
    options += [f"host:{host}"] if host else []
    return [sys.executable, str(CLITOOLS), *options, "--", *args]


def run_cli(args: list[str], cwd: Path, fault: str | None = None, host: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    completed = subprocess.run(cli_command(args, fault, host), cwd=cwd,
                               env=child_environment(env), preexec_fn=on_one_core(),
                               capture_output=True, text=True, timeout=timeout)
    return CliResult(args, completed.returncode, completed.stdout, completed.stderr)


def start_cli(args: list[str], cwd: Path, fault: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(cli_command(args, fault), cwd=cwd, env=child_environment(),
                            preexec_fn=on_one_core(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> CliResult:
    stdout, stderr = process.communicate(timeout=timeout)
    return CliResult(list(map(str, process.args)), process.returncode, stdout, stderr)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen,
             timeout: float = 120) -> None:
    """Poll until `condition` holds; fail with the child's output if it ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            result = finish(process)
            raise AssertionError(f"the run ended first ({result.returncode}): {result.stderr}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"gave up after {timeout} s: {finish(process).stderr}")
        time.sleep(0.02)


def temporary_folders(out: Path) -> list[Path]:
    """The `.OUT.tmp-PID` and `.OUT.old-PID` folders a run keeps beside OUT while it works."""
    return sorted(out.parent.glob(f".{out.name}.tmp-*")) + sorted(
        out.parent.glob(f".{out.name}.old-*"))


def file_digests(folder: Path) -> dict[str, str]:
    """Every file under `folder`, by relative path, and the SHA-256 of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def assert_one_line_error(result: CliResult, *fragments: str, status: int = 1) -> str:
    """The contract for every mistake a user can make: a non-zero status, one line on stderr
    that starts `reportgen: error:` and says what is wrong, and no traceback."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr_lines) == 1, result.stderr
    line = result.stderr_lines[0]
    assert line.startswith("reportgen: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


class CliServer:
    """A process that has imported the CLI once and forks a fresh child for each run.

    One run at a time: `run` for a whole run, or `start`, then signals to `pid`, then `finish`.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(CLITOOLS), "serve"],
                                        env=child_environment(), preexec_fn=on_one_core(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid: int | None = None
        self.args: list[str] = []

    def start(self, args: list[str], cwd: Path, fault: str | None = None) -> int:
        request = {"args": list(map(str, args)), "cwd": str(cwd), "fault": fault}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        self.pid, self.args = json.loads(self.process.stdout.readline())["pid"], request["args"]
        return self.pid

    def finish(self, timeout: float = 300) -> CliResult:
        """The run's outcome; a run still going after `timeout` s is killed (status -9)."""
        timer = threading.Timer(timeout, os.kill, (self.pid, signal.SIGKILL))
        timer.start()
        try:
            reply = json.loads(self.process.stdout.readline())
        finally:
            timer.cancel()
        return CliResult(self.args, reply["returncode"], reply["stdout"], reply["stderr"],
                         reply["peak_rss_kb"])

    def run(self, args: list[str], cwd: Path, fault: str | None = None,
            timeout: float = 300) -> CliResult:
        self.start(args, cwd, fault)
        return self.finish(timeout)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _serve() -> None:
    """Answer each request line with {"pid"} when the child starts, then its outcome."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if our parent ignores it
    from reportgen.cli.main import main  # noqa: PLC0415  (the one import every child shares)

    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryDirectory() as scratch:
            streams = Path(scratch) / "stdout", Path(scratch) / "stderr"
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(main, request, *streams)
            print(json.dumps({"pid": pid}), flush=True)
            _, status, usage = os.wait4(pid, 0)
            outcome = {"returncode": os.waitstatus_to_exitcode(status),
                       "stdout": streams[0].read_text(), "stderr": streams[1].read_text(),
                       "peak_rss_kb": usage.ru_maxrss}
        print(json.dumps(outcome), flush=True)


def _child(main: Callable[[list[str]], int], request: dict, stdout: Path, stderr: Path) -> None:
    """Run `main` as the interpreter would run the command, then leave without cleanup."""
    os.chdir(request["cwd"])
    for fd, path in ((0, os.devnull), (1, stdout), (2, stderr)):
        os.dup2(os.open(path, os.O_RDWR | os.O_CREAT), fd)
    if request["fault"]:
        _install_fault(request["fault"])
    try:
        code = main(request["args"])
    except SystemExit as done:  # argparse's exits, as the interpreter reports them
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001  (the interpreter's last resort: a traceback)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _is_target(file: object, mode: str, fault: str) -> bool:
    """Whether opening `file` in `mode` is a write the fault strikes."""
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else ""
    writes_site = any(c in mode for c in "wax") and ".tmp-" in name
    return writes_site and (fault == "eacces" or name.endswith(".html"))


def _install_fault(fault: str) -> None:
    """Replace `open` so that the first write the fault strikes fails or stalls."""
    real_open = io.open

    def faulty_open(file, mode="r", *args, **kwargs):
        if not _is_target(file, mode, fault):
            return real_open(file, mode, *args, **kwargs)
        if fault == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if fault == "eacces":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        Path(fault.removeprefix("stall:")).touch()
        time.sleep(STALL_SECONDS)
        return real_open(file, mode, *args, **kwargs)

    io.open = builtins.open = faulty_open


def _install_host_name(name: str) -> None:
    """Make every usual way of asking for the machine's name answer `name`."""
    socket.gethostname = lambda: name
    platform.node = lambda: name
    real = os.uname()
    os.uname = lambda: os.uname_result((real.sysname, name, real.release, real.version,
                                        real.machine))


def _main(argv: list[str]) -> int:
    if argv == ["serve"]:
        _serve()
        return 0
    if "--" not in argv:
        raise SystemExit("usage: clitools.py [enospc|eacces|stall:MARKER] [host:NAME] -- ARGS")
    options, args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if our parent ignores it
    for option in options:
        if option.startswith("host:"):
            _install_host_name(option.removeprefix("host:"))
        elif option in FAULTS or option.startswith("stall:"):
            _install_fault(option)
        else:
            raise SystemExit(f"clitools.py: unknown option {option!r}")
    from reportgen.cli.main import main  # noqa: PLC0415  (only the script needs the CLI)

    return main(args)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
