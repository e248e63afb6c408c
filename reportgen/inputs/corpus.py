"""Corpus: the vocabulary and the analysed text, read exactly as pytorch/examples reads them.

pytorch/examples `data.Corpus(path)` builds its dictionary from `train.txt`, then `valid.txt`,
then `test.txt`: each line is split on whitespace, `<eos>` is appended, and a word gets the next
index at its first appearance. A checkpoint of that script does not store the dictionary, so the
only way to recover the model's word ids is to rebuild it the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from reportgen.errors import ReportgenError

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train.txt", "valid.txt", "test.txt")


def strings_sha256(strings: Iterable[str]) -> str:
    """SHA-256 of strings, each followed by a NUL byte: no word can hold one, so no two lists
    hash alike by moving a boundary. Lone surrogates (undecodable bytes) are hashed as they are."""
    digest = hashlib.sha256()
    for string in strings:
        digest.update(string.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def vocabulary_sha256(words: Iterable[str]) -> str:
    """The one hash of a vocabulary, in id order, used by the capture cache and the comparison:
    two models compare only if their ids mean the same words."""
    return strings_sha256(words)


@dataclass
class Vocabulary:
    """Word <-> id, in first-appearance order, as `data.Dictionary` builds it."""

    words: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, word: str) -> int:
        if word not in self.index:
            self.index[word] = len(self.words)
            self.words.append(word)
        return self.index[word]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Vocabulary:
        vocabulary = cls()
        for word in words:
            vocabulary.add(word)
        return vocabulary


@dataclass
class Text:
    """A tokenised text: ids for the model, strings for the report (untrusted)."""

    ids: np.ndarray  # (T,) int64
    tokens: list[str]  # T strings, `<eos>` at each line end, `<unk>` for unknown words
    source: str  # the file name, for the report
    n_unknown: int  # words mapped to `<unk>` because the vocabulary lacks them
    sha256: str = ""  # of every byte of the file, read in the same pass as the tokens

    def __len__(self) -> int:
        return len(self.tokens)


MAX_LINE_BYTES = 10 * 2**20  # a longer line is refused: it is no text of words
MAX_TEXT_BYTES = 4 * 2**30  # a larger file is refused: an endless stream such as `yes` is


class TextReader:
    """The lines of one text file, read once, front to back, with a SHA-256 of all its bytes.

    The file is opened once and never seeked, so `--text <(cat file)` and a FIFO work, and the
    hash is of the bytes that were read. Lines are split and decoded as pytorch/examples'
    `open(path, encoding="utf8")` does (universal newlines: `\r\n`, `\r` and `\n` each end
    a line). Memory is bounded: a line over MAX_LINE_BYTES or a file over MAX_TEXT_BYTES is
    refused, with one line, so `/dev/zero` or an endless pipe cannot grow it without end.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""  # the first 8 KiB, to tell a binary file from a mis-encoded text
        self.handle: BinaryIO | None = None

    def __enter__(self) -> TextReader:
        path = self.path
        if not path.exists():
            raise ReportgenError(f"{path}: no such file; check the path")
        if path.is_dir():
            raise ReportgenError(f"{path}: is a folder, expected a text file")
        self.handle = path.open("rb")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.handle is not None:
            self.handle.close()

    def lines(self) -> Iterator[tuple[int, str]]:
        """Yield (1-based line number, line ending in "\n" unless it is the last)."""
        assert self.handle is not None, "use TextReader in a with statement"
        path = self.path
        number = 0
        raw_line = 0  # lines ended by b"\n", to place a byte that is not UTF-8
        while data := self.handle.readline(MAX_LINE_BYTES + 1):
            self._count(data)
            raw_line += 1
            if len(data) > MAX_LINE_BYTES and not data.endswith(b"\n"):
                raise ReportgenError(
                    f"{path}:{raw_line}: a line longer than {MAX_LINE_BYTES // 2**20} MiB; "
                    "this is not a text of words (is it a binary file or an endless stream?); "
                    "give a UTF-8 text with line breaks"
                )
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ReportgenError(self._undecodable(raw_line, data, error)) from None
            for part in _universal_lines(line):
                number += 1
                if "\x00" in part:
                    raise ReportgenError(
                        f"{path}:{number}: contains NUL bytes; this looks like a binary file, "
                        "not a text"
                    )
                yield number, part

    def finish(self) -> str:
        """Read the rest of the file, unread lines too, and return the SHA-256 of all of it."""
        assert self.handle is not None, "use TextReader in a with statement"
        while block := self.handle.read(1 << 20):
            self._count(block)
        return self.digest.hexdigest()

    def _count(self, data: bytes) -> None:
        self.digest.update(data)
        if len(self.head) < 8192:
            self.head = (self.head + data)[:8192]
        self.size += len(data)
        if self.size > MAX_TEXT_BYTES:
            raise ReportgenError(
                f"{self.path}: larger than {MAX_TEXT_BYTES // 2**30} GiB; reportgen reads "
                "texts up to that size (is it an endless stream?); give a shorter text"
            )

    def _undecodable(self, line: int, data: bytes, error: UnicodeDecodeError) -> str:
        path = self.path
        if b"\x00" in self.head:
            return (f"{path}: looks like a binary file, not a text (it holds NUL bytes); give a "
                    "UTF-8 text")
        if error.reason == "unexpected end of data" and error.end == len(data):
            byte = "an incomplete character at the end"
        else:
            byte = f"byte 0x{data[error.start]:02x}"
        return (
            f"{path}:{line}: not UTF-8 text ({byte}); convert it, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt`"
        )


def _universal_lines(line: str) -> list[str]:
    """One line ended by "\n" (or the last), split as text mode splits it: a lone "\r" ends a
    line too, and every ending reads as "\n"."""
    if "\r" not in line:
        return [line]
    parts = line.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ends = [part + "\n" for part in parts[:-1]]
    return ends + [parts[-1]] if parts[-1] else ends


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line) of a UTF-8 text, with clear errors for bad files."""
    with TextReader(path) as reader:
        yield from reader.lines()


def line_tokens(line: str, limit: int | None = None) -> list[str]:
    """Split a line as `data.Corpus` does: on whitespace, then `<eos>`; at most `limit` tokens.

    With a limit, the split stops early, so a line of a million words costs no more than its
    first `limit` when only those are analysed.
    """
    if limit is None:
        return line.split() + [EOS]
    return (line.split(None, limit)[:limit] + [EOS])[:limit]


def add_file_to_vocabulary(vocabulary: Vocabulary, path: Path) -> None:
    for _, line in read_lines(path):
        for word in line_tokens(line):
            vocabulary.add(word)


def vocabulary_from_folder(folder: Path) -> Vocabulary:
    """Rebuild the dictionary of `data.Corpus(folder)`: train, then valid, then test."""
    folder = Path(folder)
    if not folder.exists():
        raise ReportgenError(
            f"{folder}: no such data folder; --data expects the folder with train.txt, "
            "valid.txt and test.txt"
        )
    if not folder.is_dir():
        raise ReportgenError(
            f"{folder}: --data expects a folder with train.txt, valid.txt and test.txt"
        )
    missing = [name for name in SPLITS if not (folder / name).is_file()]
    if missing:
        raise ReportgenError(
            f"{folder}: missing {', '.join(missing)}; --data expects the folder the model was "
            "trained from (train.txt, valid.txt, test.txt)"
        )
    vocabulary = Vocabulary()
    for name in SPLITS:
        add_file_to_vocabulary(vocabulary, folder / name)
    return vocabulary


def vocabulary_from_file(path: Path) -> Vocabulary:
    """A dictionary built from one text file, in the same first-appearance order."""
    vocabulary = Vocabulary()
    add_file_to_vocabulary(vocabulary, Path(path))
    return vocabulary


def load_vocabulary(path: Path) -> Vocabulary:
    """Read a vocabulary: a data folder (as `data.Corpus`) or a file of one word per line."""
    path = Path(path)
    if path.is_dir():
        return vocabulary_from_folder(path)
    words = [line.rstrip("\n") for _, line in read_lines(path)]
    return Vocabulary.from_words(word for word in words if word)


def write_vocabulary(vocabulary: Vocabulary, path: Path) -> None:
    """One word per line, in id order, so `load_vocabulary` gives the same ids back."""
    Path(path).write_text("".join(word + "\n" for word in vocabulary.words), encoding="utf-8")


def tokenize(path: Path, vocabulary: Vocabulary, max_tokens: int | None = None) -> Text:
    """Read a text with a vocabulary; unknown words become `<unk>`, or fail naming the word."""
    path = Path(path)
    unk_id = vocabulary.index.get(UNK)
    ids: list[int] = []
    tokens: list[str] = []
    n_unknown = 0
    with TextReader(path) as reader:
        for number, line in reader.lines():
            if max_tokens is not None and len(ids) >= max_tokens:
                break
            for word in line_tokens(line, None if max_tokens is None else max_tokens - len(ids)):
                word_id = vocabulary.index.get(word)
                if word_id is None:
                    if unk_id is None:
                        raise ReportgenError(
                            f"{path}:{number}: word {word!r} is not in the vocabulary, which "
                            f"has no {UNK}; analyse a text from the model's own corpus"
                        )
                    word_id, word = unk_id, UNK
                    n_unknown += 1
                ids.append(word_id)
                tokens.append(word)
        sha256 = reader.finish()
    if not tokens:
        raise ReportgenError(
            f"{path}: the text is empty, no words to analyse; give a text with words"
        )
    if all(token == EOS for token in tokens):
        raise ReportgenError(
            f"{path}: the text has no words to analyse, only blank lines or {EOS}; give a text "
            "with words"
        )
    return Text(np.asarray(ids, dtype=np.int64), tokens, path.name, n_unknown, sha256)
