"""Token features: per-token booleans computed from the token strings (DESIGN.md 3.4).

Each feature is one small function from the token list to a (T,) bool array, registered in
`FEATURES`; adding a feature is one function and one line there. Token strings are untrusted
corpus text: they are only compared and matched, never interpreted.

Conventions, chosen to match how a model reads left to right:
- A state feature (`in_quotes`, `in_parens`) is the state after reading the token, so an opening
  mark counts as inside and a closing mark does not.
- Quote and parenthesis state resets at every `<eos>`: in WikiText they never span lines, and a
  stray unmatched mark then spoils one line rather than the rest of the text. `<eos>` itself is
  outside.
- `"` toggles the quote state; typographic quotes open (“) and close (”) it.
- Numbers are digits with optional `.` or `,` separators (`1998`, `3.5`, `1,000`) and WikiText's
  glue tokens `@.@` and `@,@`, which only ever join digits (`1 @,@ 000`).
- A heading is a line, between `<eos>` marks, whose first token starts with `=` and whose last
  token ends with `=`, as in `= = Gameplay = =`. The `<eos>` ending it is not part of it.
- `is_pronoun`, `is_be`, ... are the closed word classes of `reportgen.inputs.word_classes`: the
  current token is a member.

A researcher's own features (`reportgen.inputs.feature_files`) join these as further columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reportgen.inputs.word_classes import CLASS_NAMES, class_flags

EOS = "<eos>"
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
NUMBER_GLUE = frozenset({"@.@", "@,@"})
QUOTE_TOGGLE = '"'
QUOTE_OPEN = "\u201c"  # “
QUOTE_CLOSE = "\u201d"  # ”


def in_quotes(tokens: Sequence[str]) -> np.ndarray:
    """(T,) bool: inside double quotes after reading the token."""
    inside = np.zeros(len(tokens), dtype=bool)
    state = False
    for t, token in enumerate(tokens):
        if token == EOS:
            state = False
        elif token == QUOTE_TOGGLE:
            state = not state
        elif token == QUOTE_OPEN:
            state = True
        elif token == QUOTE_CLOSE:
            state = False
        inside[t] = state
    return inside


def in_parens(tokens: Sequence[str]) -> np.ndarray:
    """(T,) bool: parenthesis depth above zero after reading the token."""
    inside = np.zeros(len(tokens), dtype=bool)
    depth = 0
    for t, token in enumerate(tokens):
        if token == EOS:
            depth = 0
        elif token == "(":
            depth += 1
        elif token == ")":
            depth = max(depth - 1, 0)
        inside[t] = depth > 0
    return inside


def is_number(token: str) -> bool:
    return token in NUMBER_GLUE or NUMBER.fullmatch(token) is not None


def next_is_number(tokens: Sequence[str]) -> np.ndarray:
    """(T,) bool: the next token is a number; False at the last position."""
    return _next_matches(tokens, is_number)


def next_is_eos(tokens: Sequence[str]) -> np.ndarray:
    """(T,) bool: the next token ends the line; False at the last position."""
    return _next_matches(tokens, lambda token: token == EOS)


def _next_matches(tokens: Sequence[str], predicate: Callable[[str], bool]) -> np.ndarray:
    matches = np.zeros(len(tokens), dtype=bool)
    matches[:-1] = [predicate(token) for token in tokens[1:]]
    return matches


def in_heading(tokens: Sequence[str]) -> np.ndarray:
    """(T,) bool: the token belongs to a `= ... =` heading line."""
    inside = np.zeros(len(tokens), dtype=bool)
    start = 0
    for end in [t for t, token in enumerate(tokens) if token == EOS] + [len(tokens)]:
        line = tokens[start:end]
        if line and line[0].startswith("=") and line[-1].endswith("="):
            inside[start:end] = True
        start = end + 1
    return inside


FeatureFunction = Callable[[Sequence[str]], np.ndarray]
FEATURES: tuple[tuple[str, FeatureFunction], ...] = (
    ("in_quotes", in_quotes),
    ("in_parens", in_parens),
    ("next_is_number", next_is_number),
    ("next_is_eos", next_is_eos),
    ("in_heading", in_heading),
)
WORD_CLASS_FEATURES: tuple[str, ...] = tuple(f"is_{name}" for name in CLASS_NAMES)
BUILT_IN_FEATURES: tuple[str, ...] = (*(name for name, _ in FEATURES), *WORD_CLASS_FEATURES)

# What each feature picks out, as a noun phrase: "unit 4 is high on tokens inside double quotes".
DESCRIPTIONS: dict[str, str] = {
    "in_quotes": "tokens inside double quotes",
    "in_parens": "tokens inside parentheses",
    "next_is_number": "tokens before a number",
    "next_is_eos": "tokens before a line end (<eos>)",
    "in_heading": "tokens of = heading = lines",
    "is_pronoun": "pronouns",
    "is_be": 'forms of "be"',
    "is_have": 'forms of "have"',
    "is_conjunction": "conjunctions",
    "is_preposition": "prepositions",
    "is_possessive": "possessives",
    "is_article": "articles",
    "is_month": "month names",
    "is_punctuation": "punctuation marks",
    "is_heading_markup": "heading markup (=)",
}


@dataclass(frozen=True)
class TokenFeatures:
    """Each feature's (T,) bool array: the built-in ones in `FEATURES` and word-class order,
    then the user's own; `descriptions` says in words what each one means."""

    values: dict[str, np.ndarray]
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.values)

    @property
    def n_tokens(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def matrix(self) -> np.ndarray:
        """(T, F) bool, columns in `names` order."""
        return np.stack(list(self.values.values()), axis=1)

    def to_frame(self) -> pd.DataFrame:
        """The feature columns of tokens.csv.gz, indexed by position."""
        frame = pd.DataFrame(self.values)
        frame.index.name = "position"
        return frame


    def description(self, name: str) -> str:
        return self.descriptions.get(name, name)

    def classes(self) -> dict[str, np.ndarray]:
        """What names a cluster: the word classes ("pronoun", ...) and the user's own
        features, each a (T,) bool array."""
        classes = {name.removeprefix("is_"): self.values[name] for name in WORD_CLASS_FEATURES
                   if name in self.values}
        classes.update({name: values for name, values in self.values.items()
                        if name not in BUILT_IN_FEATURES})
        return classes


def token_features(
    tokens: Sequence[str], extra: dict[str, np.ndarray] | None = None,
    extra_descriptions: dict[str, str] | None = None,
) -> TokenFeatures:
    """Every built-in feature of a token sequence, then `extra` (name -> (T,) bool) in order.

    `extra` holds a researcher's own features, for example from
    `reportgen.inputs.feature_files.read_feature_file(path).evaluate(tokens)`.
    """
    values = {name: function(tokens) for name, function in FEATURES}
    values.update({f"is_{name}": flags for name, flags in class_flags(tokens).items()})
    descriptions = dict(DESCRIPTIONS)
    for name, flags in (extra or {}).items():
        if name in values:
            raise ValueError(f"feature {name!r} is built in; give your own feature another name")
        if len(flags) != len(tokens):
            raise ValueError(f"feature {name!r} has {len(flags)} values for {len(tokens)} tokens")
        values[name] = np.asarray(flags, dtype=bool)
        descriptions[name] = (extra_descriptions or {}).get(name, name)
    return TokenFeatures(values, descriptions)
