"""Number-agreement suites (DESIGN.md 3.6): the built-in one from Lakretz et al. (2019)'s
templates, and the user's files in Lakretz's NA-task format or Linzen/Gulordava's `.text` +
`.gold` format.

An item is a prefix, read from a fresh state after one `<eos>`, and two forms of the next word;
it is right when the model gives the correct form the higher log p. An item with any word
outside the vocabulary is skipped and counted, never mapped to `<unk>`: an `<unk>` subject
carries no number, so scoring it would measure nothing but the prior of the verb forms.

Files are read and checked before any slow stage (`read_agreement_file`), and filtered by the
vocabulary once it is known (`AgreementFile.suite`).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reportgen.inputs import agreement_lexicon as lexicon
from reportgen.errors import ReportgenError

BUILT_IN = "built-in"  # the suite name of the templates' items
ITEMS_PER_CONDITION = 200  # built-in items drawn per template and condition (fewer if fewer exist)
# Lakretz et al.'s templates, in the page's order; a two-letter condition is (subject, attractor)
TEMPLATES = ("simple", "adverb", "two adverbs", "adverbs with and", "name PP", "noun PP",
             "noun PP adverb")
NOUN_PP = "noun PP"  # the template the number-unit finder ablates on, as Lakretz et al. did
FORM = {"S": 0, "P": 1}  # a pair's singular and plural form


@dataclass
class AgreementOptions:
    """The agreement suites and the number-unit finder (DESIGN.md 3.6)."""

    enabled: bool = True  # False (--no-agreement): no suite, no finder, no page
    files: tuple[Path, ...] = ()  # --agreement: the user's suites
    seed: int = 0  # of the built-in items and the finder's random controls
    per_condition: int = ITEMS_PER_CONDITION  # built-in items per template and condition

    def __post_init__(self) -> None:
        self.files = tuple(Path(path) for path in self.files)
        if self.per_condition < 1:
            raise ReportgenError(f"--agreement-items must be at least 1, not {self.per_condition}")


@dataclass(frozen=True)
class AgreementItem:
    """One test: after `prefix`, is log p(correct) > log p(wrong)? Strings are untrusted."""

    task: str  # a template name, or the file's name
    condition: str  # e.g. "SP": singular subject, plural attractor; or the file's label
    prefix: tuple[str, ...]  # the words before the target, without the leading <eos>
    correct: str
    wrong: str

    def words(self) -> tuple[str, ...]:
        return (*self.prefix, self.correct, self.wrong)


@dataclass
class AgreementSuite:
    """The items of one suite that the vocabulary covers, and what it could not cover."""

    name: str  # BUILT_IN or a file name
    items: list[AgreementItem]
    skipped: dict[str, int] = field(default_factory=dict)  # task -> items with a word not known
    lacking: list[str] = field(default_factory=list)  # lexicon entries the vocabulary lacks


def congruence(condition: str) -> str | None:
    """"congruent" when subject and attractor agree in number, "incongruent" when not, None
    for a condition with one noun or none. Reads "SP", "singular_plural", "PS" alike."""
    if re.fullmatch(r"[SP]{2,}", condition):
        letters = list(condition)
    else:
        letters = [part[0].upper() for part in re.split(r"[^A-Za-z]+", condition)
                   if part.lower() in ("singular", "plural", "sing", "plur")]
    if len(letters) < 2:
        return None
    return "congruent" if len(set(letters)) == 1 else "incongruent"


# --- the built-in suite --------------------------------------------------------------------

Pair = tuple[str, str]


def known_pairs(pairs: Iterable[Pair], known: Callable[[str], bool],
                lacking: list[str]) -> list[Pair]:
    """The pairs whose two forms the vocabulary has; the others are added to `lacking`."""
    kept = []
    for pair in pairs:
        if known(pair[0]) and known(pair[1]):
            kept.append(pair)
        else:
            lacking.append("/".join(pair))
    return kept


def known_words(words: Iterable[str], known: Callable[[str], bool],
                lacking: list[str]) -> list[str]:
    kept = [word for word in words if known(word)]
    lacking += [word for word in words if not known(word)]
    return kept


def built_in_suite(vocabulary: Iterable[str], seed: int = 0,
                   per_condition: int = ITEMS_PER_CONDITION) -> AgreementSuite:
    """Items of every template and condition over the lexicon's words that `vocabulary` has.

    Each template and condition gets up to `per_condition` distinct items, drawn with a
    `random.Random(seed)` of its own, so that one template's items do not depend on which
    words another template could use. A template whose words the vocabulary lacks gets none.
    """
    vocabulary = set(vocabulary)
    lacking: list[str] = []
    nouns = known_pairs(lexicon.REGULAR_NOUNS + lexicon.IRREGULAR_NOUNS, vocabulary.__contains__,
                        lacking)
    locations = nouns + known_pairs(lexicon.LOCATION_NOUNS, vocabulary.__contains__, lacking)
    verbs = known_pairs(lexicon.AUXILIARY_VERBS + lexicon.PRESENT_VERBS,
                        vocabulary.__contains__, lacking)
    adverbs = known_words(lexicon.ADVERBS, vocabulary.__contains__, lacking)
    names = known_words(lexicon.NAMES, vocabulary.__contains__, lacking)
    prepositions = known_words(lexicon.PREPOSITIONS, vocabulary.__contains__, lacking)
    determiners = [word for word in lexicon.DETERMINERS if word in vocabulary]
    if "and" not in vocabulary:
        lacking.append("and")
    if not determiners:
        lacking.append("the")
    items: list[AgreementItem] = []
    if determiners and nouns and verbs:
        first, the = determiners[0], determiners[-1]
        middles = template_middles(adverbs, names, prepositions, locations, the,
                                   "and" in vocabulary)
        for index, template in enumerate(TEMPLATES):
            conditions = ("SS", "SP", "PS", "PP") if "noun PP" in template else ("S", "P")
            for condition in conditions:
                rng = random.Random(f"{seed}-{index}-{condition}")
                items += draw_items(rng, per_condition, lambda r, t=template, c=condition:
                                    template_item(r, t, c, first, nouns, verbs, middles[t]))
    return AgreementSuite(BUILT_IN, items, {}, sorted(set(lacking), key=str.lower))


Middle = Callable[[random.Random, int], "list[str] | None"]  # (rng, attractor form) -> words


def template_middles(adverbs: list[str], names: list[str], prepositions: list[str],
                     locations: list[Pair], the: str, has_and: bool) -> dict[str, Middle]:
    """What stands between subject and verb in each template; None when the vocabulary lacks
    its words. The attractor of the noun-PP templates takes the condition's second number."""
    def adverb(r: random.Random, _: int) -> list[str] | None:
        return [r.choice(adverbs)] if adverbs else None

    def two_adverbs(r: random.Random, _: int) -> list[str] | None:
        return r.sample(adverbs, 2) if len(adverbs) > 1 else None

    def adverbs_with_and(r: random.Random, _: int) -> list[str] | None:
        if len(adverbs) < 2 or not has_and:
            return None
        one, other = r.sample(adverbs, 2)
        return [one, "and", other]

    def name_pp(r: random.Random, _: int) -> list[str] | None:
        return [r.choice(prepositions), r.choice(names)] if prepositions and names else None

    def noun_pp(r: random.Random, number: int) -> list[str] | None:
        if not prepositions:
            return None
        return [r.choice(prepositions), the, r.choice(locations)[number]]

    def noun_pp_adverb(r: random.Random, number: int) -> list[str] | None:
        words = noun_pp(r, number)
        return None if words is None or not adverbs else [*words, r.choice(adverbs)]

    return {"simple": lambda r, _: [], "adverb": adverb, "two adverbs": two_adverbs,
            "adverbs with and": adverbs_with_and, "name PP": name_pp, "noun PP": noun_pp,
            "noun PP adverb": noun_pp_adverb}


def template_item(r: random.Random, template: str, condition: str, first: str,
                  nouns: list[Pair], verbs: list[Pair], middle: Middle) -> AgreementItem | None:
    """One item: `first` (The), the subject in the condition's first number, the middle, and
    the verb pair, whose form of the subject's number is the correct one."""
    number = FORM[condition[0]]
    subject = r.choice(nouns)[number]
    words = middle(r, FORM[condition[1]] if len(condition) > 1 else -1)
    if words is None:
        return None
    verb = r.choice(verbs)
    return AgreementItem(template, condition, (first, subject, *words), verb[number],
                         verb[1 - number])


def draw_items(rng: random.Random, wanted: int,
               make: Callable[[random.Random], AgreementItem | None]) -> list[AgreementItem]:
    """Up to `wanted` distinct items from `make`; gives up after 4x as many draws, so that a
    small lexicon yields all the items it has rather than duplicates."""
    seen: dict[AgreementItem, None] = {}
    for _ in range(4 * wanted):
        item = make(rng)
        if item is None:
            return []
        seen.setdefault(item, None)
        if len(seen) == wanted:
            break
    return list(seen)


# --- the user's files ----------------------------------------------------------------------

@dataclass
class AgreementFile:
    """A user's suite as read from disk, before the vocabulary is known."""

    name: str  # the file name, as the page names it
    items: list[AgreementItem]

    def suite(self, vocabulary: Iterable[str] | set[str]) -> AgreementSuite:
        """The items whose every word `vocabulary` has; the others are counted per task."""
        known = vocabulary if isinstance(vocabulary, set) else set(vocabulary)
        kept = [item for item in self.items if all(word in known for word in item.words())]
        skipped = Counter(item.task for item in self.items
                          if not all(word in known for word in item.words()))
        return AgreementSuite(self.name, kept, dict(skipped))


def read_agreement_file(path: Path) -> AgreementFile:
    """A `.text` or `.gold` file (with its partner) in Linzen/Gulordava's format, any other in
    Lakretz's NA-task format; a malformed line is one error naming the file and the line."""
    path = Path(path)
    if path.suffix in (".text", ".gold"):
        return read_text_gold(path.with_suffix(".text"), path.with_suffix(".gold"))
    return read_na_task(path)


def lines_of(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ReportgenError(f"--agreement: no such file {path}") from None
    except IsADirectoryError:
        raise ReportgenError(f"--agreement: {path} is a folder, expected a file") from None
    except UnicodeDecodeError as error:
        raise ReportgenError(f"--agreement: {path}: not UTF-8 text ({error.reason})") from None


def read_na_task(path: Path) -> AgreementFile:
    """`sentence TAB condition TAB correct|wrong TAB id`, two lines per item that differ only
    in their last word (Lakretz et al. 2019's NA tasks); blank lines are skipped."""
    rows = []
    for number, line in enumerate(lines_of(path), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 3 or columns[2].strip() not in ("correct", "wrong"):
            raise ReportgenError(f"{path}:{number}: expected sentence TAB condition TAB "
                                 "correct|wrong TAB id (NA-task format)")
        words = columns[0].split()
        if len(words) < 2:
            raise ReportgenError(f"{path}:{number}: the sentence needs a prefix and a target word")
        rows.append((number, words, columns[1].strip(), columns[2].strip()))
    if len(rows) % 2:
        raise ReportgenError(f"{path}:{rows[-1][0]}: an item is two lines, correct and wrong; "
                             "this last one has no partner")
    items = []
    for (first, words_a, condition, verdict_a), (second, words_b, _, verdict_b) in zip(
            rows[::2], rows[1::2]):
        if words_a[:-1] != words_b[:-1] or {verdict_a, verdict_b} != {"correct", "wrong"}:
            raise ReportgenError(f"{path}:{second}: this line and line {first} must differ only "
                                 "in their last word, one correct and one wrong")
        correct, wrong = (words_a[-1], words_b[-1]) if verdict_a == "correct" else (
            words_b[-1], words_a[-1])
        items.append(AgreementItem(path.stem, condition, tuple(words_a[:-1]), correct, wrong))
    return AgreementFile(path.name, items)


def read_text_gold(text: Path, gold: Path) -> AgreementFile:
    """Linzen et al. / Gulordava et al.: one sentence per `.text` line and, per `.gold` line,
    the target's 0-based word index, the correct form, the wrong form and the number of
    attractors (further columns ignored). The condition is the number of attractors."""
    sentences, golds = lines_of(text), lines_of(gold)
    if len(sentences) != len(golds):
        raise ReportgenError(f"{gold}: has {len(golds)} lines but {text.name} has "
                             f"{len(sentences)}; each sentence needs one gold line")
    items = []
    for number, (sentence, line) in enumerate(zip(sentences, golds), start=1):
        columns = line.split()
        if len(columns) < 4 or not columns[0].isdigit() or not columns[3].isdigit():
            raise ReportgenError(f"{gold}:{number}: expected target index, correct form, wrong "
                                 "form and number of attractors")
        index = int(columns[0])
        words = sentence.split()
        if not 0 < index < len(words):
            raise ReportgenError(f"{gold}:{number}: target index {index} is outside the "
                                 f"sentence's {len(words)} words, or leaves no prefix")
        attractors = int(columns[3])
        condition = f"{attractors} attractor{'s' if attractors != 1 else ''}"
        items.append(AgreementItem(text.stem, condition, tuple(words[:index]), columns[1],
                                   columns[2]))
    return AgreementFile(text.name, items)
