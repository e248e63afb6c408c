"""A researcher's own token features, from `--features FILE`, to test their own hypotheses.

Two kinds of file, told apart by their suffix:

- `.toml`: word lists and regular expressions. Each table is one feature, named by its key:

      [is_colour]
      words = ["red", "green", "blue"]   # the token is one of these
      description = "colour words"        # optional: what it picks out, on the report's pages

      [is_year]
      regex = "1[5-9][0-9][0-9]|20[0-9][0-9]"   # the whole token matches

      [is_title_word]
      words = ["love", "night"]
      case_sensitive = false              # optional; words are matched as written by default

- `.csv`: a per-token annotation aligned with the text, like LSTMVis's annotation tracks. One
  row per token of the text (its `<eos>` marks included), in text order, with a header. Every
  column other than `position` and `token` is a feature of 0/1 values. A `token` column, when
  there is one, must repeat the text's tokens (or the exports' quoted form of them, `'=` for
  `=`, see `reportgen.csv_safety`), which catches a file made for another text;
  `position`, when there is one, must count from 0. It may be gzipped (`.csv.gz`), like
  `data/tokens.csv.gz` of an earlier report, which is a ready template: keep `position`,
  `token` and the columns you want, add yours and give it back.

The file is read and checked when the run starts, before any slow stage; it is only matched
against tokens later, since the text is known then. Everything in it is untrusted: names must
be plain identifiers, and regular expressions are only ever matched against tokens.
"""

from __future__ import annotations

import csv
import gzip
import re
import tomllib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reportgen.csv_safety import neutralise_cell
from reportgen.errors import ReportgenError

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
TOML_KEYS = frozenset({"words", "regex", "description", "case_sensitive"})
ANNOTATION_KEYS = ("position", "token")  # columns of an annotation file that are not features
MAX_FILE_BYTES = 512 << 20  # an annotation of 100M tokens is far beyond any text analysed


@dataclass(frozen=True)
class WordListFeature:
    """One TOML feature: the token is in `words`, or fully matches `regex`."""

    name: str
    words: frozenset[str]
    regex: re.Pattern[str] | None
    case_sensitive: bool
    description: str

    def flags(self, tokens: Sequence[str]) -> np.ndarray:
        """(T,) bool, decided once per distinct token."""
        decided = {token: self.matches(token) for token in set(tokens)}
        return np.fromiter((decided[token] for token in tokens), dtype=bool, count=len(tokens))

    def matches(self, token: str) -> bool:
        word = token if self.case_sensitive else token.lower()
        if word in self.words:
            return True
        return self.regex is not None and self.regex.fullmatch(token) is not None


@dataclass(frozen=True)
class FeatureFile:
    """The features of one `--features` file, checked, ready to meet the text's tokens."""

    path: Path
    word_lists: tuple[WordListFeature, ...] = ()
    annotation: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) bool
    annotation_tokens: tuple[str, ...] | None = None  # the file's `token` column, if any

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.word_lists] + list(self.annotation)

    def descriptions(self) -> dict[str, str]:
        own = {feature.name: feature.description for feature in self.word_lists}
        return {**own, **{name: f"tokens marked {name} in {self.path.name}"
                           for name in self.annotation}}

    def evaluate(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        """Each feature's (T,) bool array over `tokens`; an annotation must fit them."""
        values = {feature.name: feature.flags(tokens) for feature in self.word_lists}
        if self.annotation:
            values.update(self.aligned_annotation(tokens))
        return values

    def aligned_annotation(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        """The annotation's first T rows; fewer rows than tokens, or other tokens, is an error.

        More rows than tokens is allowed, so that one file serves a text cut by --max-tokens.
        """
        n_rows = len(next(iter(self.annotation.values())))
        if n_rows < len(tokens):
            raise ReportgenError(
                f"{self.path}: has {n_rows:,} rows but the text has {len(tokens):,} tokens; "
                "give one row per token, <eos> included")
        if self.annotation_tokens is not None:
            for position, (mine, theirs) in enumerate(zip(self.annotation_tokens, tokens)):
                if mine != theirs and mine != neutralise_cell(theirs):
                    raise ReportgenError(
                        f"{self.path}: row {position + 2} has token {mine!r} where the text has "
                        f"{theirs!r}; the annotation was made for another text")
        return {name: values[: len(tokens)] for name, values in self.annotation.items()}


def read_feature_file(path: Path, reserved: Sequence[str] = ()) -> FeatureFile:
    """Read and check a `.toml` or `.csv` feature file; `reserved` are the built-in names."""
    path = Path(path)
    if not path.is_file():
        raise ReportgenError(f"--features {path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ReportgenError(f"--features {path}: larger than {MAX_FILE_BYTES >> 20} MB")
    suffix = ".csv.gz" if path.name.lower().endswith(".csv.gz") else path.suffix.lower()
    if suffix not in (".toml", ".csv", ".csv.gz"):
        raise ReportgenError(
            f"--features {path}: give a .toml file of word lists or a .csv (or .csv.gz) "
            "annotation")
    try:
        text = file_bytes(path, suffix).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ReportgenError(f"{path}: not UTF-8 text (byte {error.start})") from None
    if suffix == ".toml":
        features = FeatureFile(path, word_lists=parse_word_lists(path, text))
    else:
        features = parse_annotation(path, text)
    for name in features.names:
        if name in reserved:
            raise ReportgenError(f"{path}: feature {name!r} is built in; choose another name")
    if not features.names:
        raise ReportgenError(f"{path}: defines no feature")
    return features


def file_bytes(path: Path, suffix: str) -> bytes:
    """The file's bytes, gunzipped for `.csv.gz`, never more than MAX_FILE_BYTES of them."""
    if suffix != ".csv.gz":
        return path.read_bytes()
    try:
        with gzip.open(path) as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise ReportgenError(f"--features {path}: not a readable gzip file ({error})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ReportgenError(f"--features {path}: larger than {MAX_FILE_BYTES >> 20} MB unpacked")
    return data


def check_name(path: Path, name: str) -> str:
    if not NAME.fullmatch(name):
        raise ReportgenError(
            f"{path}: feature name {name[:40]!r} must be lower-case letters, digits and _, "
            "starting with a letter, at most 40 characters")
    return name


def parse_word_lists(path: Path, text: str) -> tuple[WordListFeature, ...]:
    try:
        tables = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as error:
        raise ReportgenError(f"{path}: not valid TOML: {str(error)[:200]}") from None
    return tuple(word_list_feature(path, name, table) for name, table in tables.items())


def word_list_feature(path: Path, name: str, table: object) -> WordListFeature:
    check_name(path, name)
    if not isinstance(table, dict):
        raise ReportgenError(f"{path}: [{name}] must be a table with words or regex")
    unknown = sorted(set(table) - TOML_KEYS)
    if unknown:
        raise ReportgenError(f"{path}: [{name}] has unknown key {unknown[0][:40]!r}; "
                             f"use {', '.join(sorted(TOML_KEYS))}")
    words, regex = table.get("words", []), table.get("regex")
    case_sensitive = table.get("case_sensitive", True)
    description = table.get("description", name)
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ReportgenError(f"{path}: [{name}] words must be a list of strings")
    if regex is not None and not isinstance(regex, str):
        raise ReportgenError(f"{path}: [{name}] regex must be a string")
    if not isinstance(case_sensitive, bool):
        raise ReportgenError(f"{path}: [{name}] case_sensitive must be true or false")
    if not isinstance(description, str):
        raise ReportgenError(f"{path}: [{name}] description must be a string")
    if not words and not regex:
        raise ReportgenError(f"{path}: [{name}] needs words or a regex")
    flags = 0 if case_sensitive else re.IGNORECASE
    try:
        pattern = re.compile(regex, flags) if regex else None
    except (re.error, RecursionError, OverflowError) as error:
        raise ReportgenError(f"{path}: [{name}] regex does not compile: {error}") from None
    listed = frozenset(words if case_sensitive else (w.lower() for w in words))
    return WordListFeature(name, listed, pattern, case_sensitive, description[:200])


def parse_annotation(path: Path, text: str) -> FeatureFile:
    """A CSV of 0/1 columns, one row per token; `position` and `token` columns are checked."""
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if not header:
        raise ReportgenError(f"{path}: empty; the first line names the feature columns")
    if len(set(header)) != len(header):
        raise ReportgenError(f"{path}: a column name appears twice in the header")
    names = [check_name(path, column) for column in header if column not in ANNOTATION_KEYS]
    columns: dict[str, list[bool]] = {name: [] for name in names}
    tokens: list[str] = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ReportgenError(f"{path}:{line}: {len(row)} cells where the header has "
                                 f"{len(header)}")
        for column, cell in zip(header, row):
            if column == "token":
                tokens.append(cell)
            elif column == "position":
                if cell != str(line - 2):
                    raise ReportgenError(f"{path}:{line}: position {cell[:20]!r} where "
                                         f"{line - 2} was expected; one row per token, in order")
            elif cell in ("0", "1"):
                columns[column].append(cell == "1")
            else:
                raise ReportgenError(f"{path}:{line}: {column} is {cell[:20]!r}; use 0 or 1")
    if not tokens and not any(columns.values()):
        raise ReportgenError(f"{path}: has a header but no rows")
    return FeatureFile(
        path,
        annotation={name: np.array(values, dtype=bool) for name, values in columns.items()},
        annotation_tokens=tuple(tokens) if "token" in header else None,
    )
