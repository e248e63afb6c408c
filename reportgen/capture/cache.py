"""A disk cache of captures, so a second report of the same model and text skips the model.

The capture of a long text is the slow stage (minutes for a medium model on WikiText-2's test
split) and its states are the big data (2.5 GB of float32 for 245,569 tokens x 650 units x 4
states). An entry is a folder of `.npy` files named by a hash of everything that decides the
numbers: the checkpoint's bytes, the tokens and their ids, the vocabulary, and the options that
change stored values. Reading maps the files read-only, so the states live in the page cache
and not in the process; the analyses stream over them in chunks.

Entries are written under a `.pending-` name and renamed once complete, so an interrupted run
never leaves an entry that looks whole. `meta.json` holds the CRC-32 of every `.npy` file, and
a reused entry is checked against them whole: damaged data behind an intact header would
otherwise give a wrong perplexity and wrong neurons without a word. CRC-32 reads 3.6 GB/s here,
so checking the 2.5 GB of a medium model's capture costs under a second against minutes to
capture again. The least recently used entries are removed once the
cache grows past its limit.

The cache folder may be a folder of the user's (`--cache DIR`, `$REPORTGEN_CACHE`), so reportgen
only ever deletes what it made: every entry and pending folder holds the marker file `MARKER`,
written first, and a folder without it is never removed, however old, big or entry-like.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reportgen.capture.core import (
    TOP_K,
    Capture,
    CaptureOptions,
    capture,
    parse_state_name,
    state_name,
)
from reportgen.capture.streams import StreamRecord
from reportgen.errors import ReportgenError
from reportgen.inputs.corpus import strings_sha256, vocabulary_sha256
from reportgen.inputs.model import RNNModel
from reportgen.versions import key_versions, modules_provenance

CACHE_FORMAT = 4  # bump when an entry's files or their meaning change (4: streams, provenance)
CAPTURE_MODULES = ("reportgen.capture.core", "reportgen.inputs.model", "reportgen.capture.recurrence",
                   "reportgen.capture.streams", "reportgen.capture.split_softmax")  # the code that captures
CHECK_CHUNK = 16 << 20  # bytes read at a time when a file's CRC-32 is computed
DEFAULT_LIMIT_GB = 20.0
META = "meta.json"
PENDING = ".pending-"
MARKER = ".reportgen-capture"  # written inside every entry and pending folder reportgen makes
MARKER_TEXT = "reportgen capture cache entry; reportgen may delete this folder\n"


def default_cache_folder() -> Path:
    """`$REPORTGEN_CACHE`, else `$XDG_CACHE_HOME/reportgen/captures`, else
    `~/.cache/reportgen/captures`."""
    if os.environ.get("REPORTGEN_CACHE"):
        return Path(os.environ["REPORTGEN_CACHE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "reportgen" / "captures"


@dataclass(frozen=True)
class CaptureKey:
    """What decides a capture's numbers; the entry's folder is named by its hash."""

    checkpoint_sha256: str
    tokens_sha256: str  # the token strings and their ids
    vocabulary_sha256: str
    dtype: str
    streams: int  # 0 when chosen, which the model and the text decide
    burn_in: int
    made_by: str  # digest of the library versions and the capture code's source and constants
    format: int = CACHE_FORMAT

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def capture_key(checkpoint_sha256: str, token_ids: np.ndarray, tokens: list[str],
                vocabulary: list[str], options: CaptureOptions) -> CaptureKey:
    ids = np.ascontiguousarray(token_ids, dtype=np.int64)
    tokens_digest = hashlib.sha256(ids.tobytes())
    tokens_digest.update(strings_sha256(tokens).encode("ascii"))
    return CaptureKey(
        checkpoint_sha256=checkpoint_sha256,
        tokens_sha256=tokens_digest.hexdigest(),
        vocabulary_sha256=vocabulary_sha256(vocabulary),
        dtype=options.dtype,
        streams=options.streams,
        burn_in=options.burn_in,
        made_by=made_by_digest(),
    )


def made_by_digest() -> str:
    """What computed a capture besides its inputs: reportgen's and the libraries' versions,
    and the source and constants of the capture code, so an upgrade captures again."""
    text = json.dumps({"versions": key_versions(),
                       "modules": modules_provenance(CAPTURE_MODULES)}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class CacheResult:
    capture: Capture
    reused: bool  # True when the capture came from an earlier run
    entry: Path | None  # the entry's folder; None when caching was off


def cached_capture(model: RNNModel, token_ids: np.ndarray, tokens: list[str],
                   vocabulary: list[str], options: CaptureOptions, checkpoint_sha256: str,
                   folder: Path | None, limit_gb: float = DEFAULT_LIMIT_GB,
                   sources: dict[str, str] | None = None) -> CacheResult:
    """The capture from `folder` when an earlier run made it, else a new one stored there.

    `folder=None` captures into memory and stores nothing. `sources` (the checkpoint's and the
    text's paths) are written into a new entry's meta for `reportgen cache list`; they are not
    part of the key.
    """
    if folder is None:
        return CacheResult(capture(model, token_ids, tokens, vocabulary, options), False, None)
    entry = folder / capture_key(checkpoint_sha256, token_ids, tokens, vocabulary,
                                 options).digest()
    found = load_entry(entry, tokens, vocabulary)
    if found is not None:
        os.utime(entry / META)
        mark(entry)  # an entry made before markers existed: its name and files show it is ours
        return CacheResult(found, True, entry)
    store_entry(model, token_ids, tokens, vocabulary, options, entry, sources or {})
    prune(folder, int(limit_gb * 1e9), keep=entry)
    captured = load_entry(entry, tokens, vocabulary)
    if captured is None:
        raise ReportgenError(f"the capture cache entry {entry} could not be read back; "
                             "check the disk, or use --no-cache")
    return CacheResult(captured, False, entry)


def store_entry(model: RNNModel, token_ids: np.ndarray, tokens: list[str],
                vocabulary: list[str], options: CaptureOptions, entry: Path,
                sources: dict[str, str]) -> None:
    """Capture straight into a pending folder, then rename it to `entry` in one step."""
    pending = entry.with_name(f"{PENDING}{entry.name}-{os.getpid()}")
    try:
        remove_stale_pending(entry.parent)
        pending.mkdir(parents=True)
        mark(pending)
        captured = capture(model, token_ids, tokens, vocabulary, options, folder=pending)
        for array in array_fields(captured).values():
            if isinstance(array, np.memmap):
                array.flush()
        np.save(pending / "token_ids.npy", captured.token_ids)
        meta = {"format": CACHE_FORMAT, "n_tokens": captured.n_tokens, "dtype": options.dtype,
                "states": [state_name(key) for key in captured.keys], "sources": sources,
                "streams": asdict(captured.streams),
                "crc32": {path.name: file_crc32(path) for path in sorted(pending.glob("*.npy"))}}
        (pending / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        del captured
        publish(pending, entry)
    except OSError as error:
        raise ReportgenError(
            f"could not write the capture cache in {entry.parent}: {error.strerror or error}; "
            "free some space, give another --cache folder, or use --no-cache"
        ) from None
    finally:
        remove_if_ours(pending)


def mark(folder: Path) -> None:
    """Mark `folder` as made by reportgen, so that pruning may delete it."""
    marker = folder / MARKER
    if not marker.is_file():
        marker.write_text(MARKER_TEXT, encoding="utf-8")


def is_ours(folder: Path) -> bool:
    """Whether reportgen made `folder`: a real folder (not a link) holding the marker."""
    return folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file()


def remove_if_ours(folder: Path) -> None:
    """Delete `folder` when it carries reportgen's marker; an empty folder is only removed
    (a run killed between making a pending folder and marking it leaves one)."""
    if is_ours(folder):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        try:
            folder.rmdir()
        except OSError:
            pass


def publish(pending: Path, entry: Path) -> None:
    """Rename the finished pending folder to its entry; if another run got there first, its
    entry holds the same numbers and is kept."""
    try:
        pending.rename(entry)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise


def array_fields(captured: Capture) -> dict[str, np.ndarray]:
    """Every array of a capture under its file name."""
    arrays = {state_name(key): values for key, values in captured.states.items()}
    arrays.update(token_ids=captured.token_ids, log_prob_next=captured.log_prob_next,
                  top_ids=captured.top_ids, top_log_probs=captured.top_log_probs)
    return arrays


def load_entry(entry: Path, tokens: list[str], vocabulary: list[str]) -> Capture | None:
    """The entry's capture, its arrays mapped read-only; None when it is missing or damaged
    (a damaged entry is removed, to be written again)."""
    if not (entry / META).is_file() or (not is_ours(entry) and not _legacy_entry(entry)):
        return None
    try:
        meta = json.loads((entry / META).read_text(encoding="utf-8"))
        n = len(tokens)
        if meta.get("format") != CACHE_FORMAT or meta.get("n_tokens") != n:
            raise ValueError("format or length differs")
        check_files(entry, meta["crc32"])
        states = {}
        for name in meta["states"]:
            states[parse_state_name(name)] = _mapped(entry, name, meta["dtype"], n, None)
        captured = Capture(
            token_ids=np.asarray(_mapped(entry, "token_ids", "int64", n)),
            tokens=list(tokens),
            states=states,
            log_prob_next=_mapped(entry, "log_prob_next", "float32", n),
            top_ids=_mapped(entry, "top_ids", "int64", n, TOP_K),
            top_log_probs=_mapped(entry, "top_log_probs", "float32", n, TOP_K),
            vocabulary=list(vocabulary),
            streams=StreamRecord(**meta["streams"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        remove_if_ours(entry)
        return None
    return captured


def file_crc32(path: Path) -> int:
    """The CRC-32 of a whole file, read in chunks so memory stays small."""
    crc = 0
    with path.open("rb") as file:
        while chunk := file.read(CHECK_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def check_files(entry: Path, expected: dict[str, int]) -> None:
    """Every `.npy` file of the entry, and only those, with the CRC-32 it was written with."""
    present = sorted(path.name for path in entry.glob("*.npy"))
    if present != sorted(expected):
        raise ValueError(f"the entry holds {present}, not {sorted(expected)}")
    for name, crc in expected.items():
        if file_crc32(entry / name) != crc:
            raise ValueError(f"{name} is damaged: its CRC-32 differs from when it was written")


def _legacy_entry(entry: Path) -> bool:
    """An entry written before markers existed: named by a key digest, with a `meta.json` of
    this cache format. Reused (and then marked), but never deleted unmarked."""
    if entry.is_symlink() or len(entry.name) != 32 or not all(
            char in "0123456789abcdef" for char in entry.name):
        return False
    try:
        meta = json.loads((entry / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == CACHE_FORMAT


def _mapped(entry: Path, name: str, dtype: str, n: int, width: int | None = 0) -> np.ndarray:
    """One `.npy` file of an entry mapped read-only, checked for its dtype and length; a
    `width` of 0 means a 1-D array, None any width."""
    array = np.load(entry / f"{name}.npy", mmap_mode="r")
    shape_ok = array.shape[0] == n and (
        array.ndim == 1 if width == 0 else array.ndim == 2 and width in (None, array.shape[1]))
    if array.dtype != np.dtype(dtype) or not shape_ok:
        raise ValueError(f"{name}.npy has {array.dtype} {array.shape}")
    return array


def entry_size(entry: Path) -> int:
    """Bytes of an entry's files; 0 for one that another run removed meanwhile."""
    try:
        return sum(path.stat().st_size for path in entry.iterdir() if path.is_file())
    except OSError:
        return 0


def last_used(entry: Path) -> float:
    try:
        return (entry / META).stat().st_mtime
    except OSError:
        return 0.0


def prune(folder: Path, limit_bytes: int, keep: Path) -> None:
    """Remove the least recently used entries until the cache fits its limit; `keep`, the
    entry this run uses, is never removed, and neither is any folder without the marker."""
    entries = [path for path in folder.iterdir()
               if not path.name.startswith(".") and path != keep and is_ours(path)]
    entries.sort(key=last_used)
    total = entry_size(keep) + sum(entry_size(path) for path in entries)
    for path in entries:
        if total <= limit_bytes:
            break
        total -= entry_size(path)
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_pending(folder: Path) -> None:
    """Pending folders that runs now dead (their process is gone) made are removed."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if not path.name.startswith(PENDING):
            continue
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_is_alive(int(pid)):
            remove_if_ours(path)


def process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
