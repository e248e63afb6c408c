"""The closed word classes of the thesis's layer-1 clusters, as token features and cluster labels.

The thesis (Table 5.1) found t-SNE clusters of pronouns, forms of "be" and "have",
conjunctions, possessives and prepositions, plus one of the `=` heading markup. These lists
let the report name such a cluster, and label a unit that fires on such words, without the
reader guessing. They are small, closed English classes: every member is listed.

Matching is on the token as WikiText writes it: lower-cased, except months, which are matched
as written, so that the modal `may` is not the month `May`. A word may belong to two classes
(`her` is a pronoun and a possessive). Punctuation is any token made only of marks, except
WikiText's number glue (`@,@`, `@.@`, `@-@`) and the heading markup `=`, which is a class of its
own. Relative pronouns (`who`, `whom`, `which`) are pronouns, since the thesis's and our real
models' pronoun clusters hold them; `that` is left out, being mostly a conjunction or determiner.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

WORD_CLASSES: dict[str, frozenset[str]] = {
    "pronoun": frozenset({
        "i", "me", "you", "he", "him", "she", "her", "it", "we", "us", "they", "them",
        "myself", "yourself", "himself", "herself", "itself", "ourselves", "yourselves",
        "themselves", "mine", "yours", "hers", "ours", "theirs", "who", "whom", "which",
    }),
    "be": frozenset({"be", "am", "is", "are", "was", "were", "been", "being"}),
    "have": frozenset({"have", "has", "had", "having"}),
    "conjunction": frozenset({
        "and", "or", "but", "nor", "yet", "although", "though", "because", "while",
        "whereas", "unless", "whether", "if",
    }),
    "preposition": frozenset({
        "of", "in", "on", "at", "by", "for", "with", "from", "to", "into", "onto", "upon",
        "about", "above", "across", "after", "against", "along", "among", "around", "before",
        "behind", "below", "beneath", "beside", "between", "beyond", "during", "except",
        "inside", "near", "off", "outside", "over", "past", "since", "through", "throughout",
        "toward", "towards", "under", "underneath", "until", "via", "within", "without", "as",
    }),
    "possessive": frozenset({"my", "your", "his", "her", "its", "our", "their", "'s", "whose"}),
    "article": frozenset({"the", "a", "an"}),
}
MONTHS = frozenset({
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
})
NUMBER_GLUE = re.compile(r"@.@")  # WikiText's `@,@`, `@.@` and `@-@` inside numbers
HEADING_MARK = re.compile(r"=+")
PUNCTUATION = re.compile(r"[^\w\s<>]+")  # marks only; `<eos>` and `<unk>` hold letters

CLASS_NAMES: tuple[str, ...] = (*WORD_CLASSES, "month", "punctuation", "heading_markup")


def classes_of(token: str) -> tuple[str, ...]:
    """Every class of a token, in `CLASS_NAMES` order; () for an open-class word."""
    lower = token.lower()
    found = [name for name, words in WORD_CLASSES.items() if lower in words]
    if token in MONTHS:
        found.append("month")
    if HEADING_MARK.fullmatch(token):
        found.append("heading_markup")
    elif PUNCTUATION.fullmatch(token) and not NUMBER_GLUE.fullmatch(token):
        found.append("punctuation")
    return tuple(found)


def class_flags(tokens: Sequence[str]) -> dict[str, np.ndarray]:
    """Each class's (T,) bool array: whether the token belongs to it.

    Classes are looked up once per distinct word, so a long text costs one pass.
    """
    distinct = {token: classes_of(token) for token in set(tokens)}
    flags = {name: np.zeros(len(tokens), dtype=bool) for name in CLASS_NAMES}
    for position, token in enumerate(tokens):
        for name in distinct[token]:
            flags[name][position] = True
    return flags
