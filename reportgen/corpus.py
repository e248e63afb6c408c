"""Corpus: the vocabulary and the analysed text, read exactly as pytorch/examples reads them.

pytorch/examples `data.Corpus(path)` builds its dictionary from `train.txt`, then `valid.txt`,
then `test.txt`: each line is split on whitespace, `<eos>` is appended, and a word gets the next
index at its first appearance. A checkpoint of that script does not store the dictionary, so the
only way to recover the model's word ids is to rebuild it the same way.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reportgen.errors import ReportgenError

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train.txt", "valid.txt", "test.txt")


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

    def __len__(self) -> int:
        return len(self.tokens)


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line) of a UTF-8 text, with clear errors for bad files."""
    path = Path(path)
    if not path.exists():
        raise ReportgenError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ReportgenError(f"{path}: is a folder, expected a text file")
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if "\x00" in line:
                    raise ReportgenError(
                        f"{path}:{number}: contains NUL bytes; this looks like a binary file, "
                        "not a text"
                    )
                yield number, line
    except UnicodeDecodeError:
        raise ReportgenError(describe_undecodable(path)) from None


def describe_undecodable(path: Path) -> str:
    """The error line for a file that is not UTF-8: binary, or the line of its first bad byte.

    The text decoder reads ahead in blocks, so its error cannot say which line failed; this
    second pass can, one MiB at a time.
    """
    with path.open("rb") as handle:
        if b"\x00" in handle.read(8192):
            return (f"{path}: looks like a binary file, not a text (it holds NUL bytes); give a "
                    "UTF-8 text")
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            pending = decoder.getstate()[0]  # the start of a character cut by the last block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                data = pending + block
                line += data[: error.start].count(b"\n")
                byte = f"byte 0x{data[error.start]:02x}"
                break
            line += block.count(b"\n")
        else:
            byte = "an incomplete character at the end"
    return (
        f"{path}:{line}: not UTF-8 text ({byte}); convert it, e.g. "
        f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt`"
    )


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
    for number, line in read_lines(path):
        if max_tokens is not None and len(ids) >= max_tokens:
            break
        for word in line_tokens(line, None if max_tokens is None else max_tokens - len(ids)):
            word_id = vocabulary.index.get(word)
            if word_id is None:
                if unk_id is None:
                    raise ReportgenError(
                        f"{path}:{number}: word {word!r} is not in the vocabulary, which has "
                        f"no {UNK}; analyse a text from the model's own corpus"
                    )
                word_id, word = unk_id, UNK
                n_unknown += 1
            ids.append(word_id)
            tokens.append(word)
    if not tokens:
        raise ReportgenError(
            f"{path}: the text is empty, no words to analyse; give a text with words"
        )
    if all(token == EOS for token in tokens):
        raise ReportgenError(
            f"{path}: the text has no words to analyse, only blank lines or {EOS}; give a text "
            "with words"
        )
    return Text(np.asarray(ids, dtype=np.int64), tokens, path.name, n_unknown)
