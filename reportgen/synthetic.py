"""Built-in corpus: WikiText-2-like text with planted structure, and its ground truth.

The demo report and the tests train a small LSTM on this text and then check that the
analyses recover what was planted here:

- Quoted spans `" ... "` and parenthesised spans `( ... )` of 1 to 15 tokens, in about 70% of
  sentences. A sentence never ends inside an open span, so the model can only predict the
  closing mark (and avoid predicting `.`) by knowing that a span is open. A quote follows an
  introducer (`called`, `known as`, ...), as in WikiText's `known as " European lobster "`, so
  the word before a `"` tells whether it opens or closes. Parentheses hold ordinary-looking
  text. Quotes hold titles, as most of WikiText's do (`" Crazy in Love "`): capitalised title
  words (a class of their own, used nowhere else) joined by `of`, `in the`, `and`, ..., so the
  quote state decides the very next word (a title word after `of the` inside, an article or
  a noun outside). That is what gives the model's first layer its own "inside quotes" units.
  When quotes held ordinary clauses, the quote state mattered only for the closing mark, and
  the first layer's best quote unit stayed at AUROC 0.78-0.96 and outside the top 10% of its
  KL ranking: the clean latch formed in the second layer only.
- Numbers in WikiText form (`12`, `1 @,@ 500`, `3 @.@ 5`, years, `12 May 1998`), headings
  ` = Title = ` and ` = = Section = = `, and sentence ends.
- Word classes (`WORD_CLASSES`), each word in exactly one. Sentences come from a small grammar
  in which every class has its own distributional context (pronouns start clauses and precede
  be, have, modals and verbs; prepositions precede articles, possessives, months and numbers;
  possessives precede nouns directly) and members of a class are drawn uniformly (except `be`
  and `been`, which follow modals and have, and `a` or `an`, chosen by the next word), so
  members are interchangeable and a model's states can cluster by class.

The file format is that of WikiText-2's tokenised text: space-separated tokens, one paragraph
per line, each line starting and ending with a space, a blank line (a single space) around
headings and two between articles. Words are lower case except months, names and section
titles; sentence starts are not capitalised, so that a word is one token wherever it stands.
The vocabulary is about 390 tokens, so a model trains in minutes on a CPU.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from reportgen.corpus import EOS, UNK
from reportgen.errors import ReportgenError

OTHER = "other"  # the class of punctuation, numbers, heading marks, `'s`, `<unk>` and `<eos>`

WORD_CLASSES: dict[str, tuple[str, ...]] = {
    "pronoun": ("he", "she", "it", "they", "we", "I", "you"),
    "be": ("is", "was", "are", "were", "be", "been"),
    "have": ("has", "have", "had"),
    "modal": ("will", "would", "could", "should", "might", "must", "can"),
    "conjunction": ("and", "but", "while", "although", "because", "whereas", "though"),
    "preposition": ("of", "in", "on", "at", "from", "with", "by", "for", "to", "into", "near",
                    "during", "after", "before", "under", "as"),
    "possessive": ("his", "her", "its", "their", "our", "my", "your"),
    "article": ("the", "a", "an", "this", "that", "these", "those"),
    "month": ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"),
    "noun": ("army", "battle", "bridge", "castle", "church", "city", "club", "company", "council",
             "country", "court", "river", "road", "school", "ship", "song", "station", "team",
             "town", "tower", "village", "war", "album", "band", "building", "campaign",
             "career", "character", "college", "film", "game", "government", "island", "king",
             "league", "line", "museum", "novel", "party", "period", "region", "regiment",
             "series", "season", "squadron", "storm", "system", "temple", "theatre", "track",
             "tour", "harbour", "garden", "railway", "festival"),
    "unit": ("metres", "kilometres", "miles", "feet", "people", "tonnes", "years", "days",
             "soldiers", "copies"),
    "verb": ("built", "opened", "captured", "founded", "released", "recorded", "destroyed",
             "designed", "completed", "formed", "named", "published", "reached", "received",
             "joined", "left", "found", "held", "made", "won", "lost", "led", "sold", "played",
             "produced", "replaced", "attacked", "described", "established", "announced",
             "defeated", "moved", "returned", "served", "signed", "used", "elected", "appointed",
             "restored", "called", "titled", "known"),
    "adjective": ("large", "small", "new", "old", "first", "second", "final", "major", "local",
                  "national", "royal", "early", "late", "main", "northern", "southern",
                  "eastern", "western", "original", "popular", "successful", "famous",
                  "ancient", "modern", "military", "public", "single", "important", "long",
                  "short"),
    "name": ("Arden", "Bellamy", "Carver", "Delacroix", "Everett", "Fairfax", "Galloway",
             "Hastings", "Ingram", "Jarrow", "Kendall", "Lyndon", "Marlowe", "Norwood", "Oakley",
             "Prescott", "Quinton", "Radcliffe", "Sterling", "Thorne", "Underwood", "Vance",
             "Whitmore", "Yardley", "Ashford"),
    "title": ("Love", "Fire", "Night", "Dream", "Heart", "Rain", "Gold", "Stone", "Summer",
              "Winter", "Light", "Shadow", "Sky", "Moon", "Star", "Home", "Glory", "Thunder",
              "Angel", "Ocean"),
    "section": ("History", "Background", "Description", "Design", "Construction", "Career",
                "Reception", "Legacy", "Release", "Aftermath", "Early", "Later", "Personal",
                "Life", "Years", "Service", "Music", "Plot", "Production"),
}

_CLASS_OF_WORD: dict[str, str] = {
    word: word_class for word_class, words in WORD_CLASSES.items() for word in words
}

_FINITE_BE = ("is", "was", "are", "were")  # the forms of be that follow a subject
_QUOTE_INTRODUCERS = ("called", "named", "titled", "known as", "described as")
_TITLE_JOINTS = ("of", "of the", "in", "in the", "on the", "and")  # between a title's words
TITLE_CONTINUES = 0.5  # chance that a title goes on with a joint and another title word

# Rates chosen so spans are frequent enough for a small LSTM to learn a dedicated state.
QUOTE_RATE = 0.6  # share of sentences with a quoted span
PAREN_RATE = 0.25 # share of sentences with a parenthesised span
MAX_SPAN_CONTENT = 15  # tokens strictly between the marks: 1 to 15
UNK_RATE = 0.015  # share of nouns, adjectives and names written as `<unk>`

# Default split sizes, in tokens (with `<eos>`). The demo recipe (2-layer LSTM, emsize 64,
# nhid 128, 6 epochs of SGD at batch 20, bptt 35) makes 1714 steps over 200k tokens, 30-40 s
# of training on one CPU thread. Measured with it on corpus seeds 0-3 (test split): in each
# layer and state, units with AUROC >= 0.94 or <= 0.06 for inside quotes, and in layer 1 one
# with AUROC >= 0.965 or <= 0.035 for inside parentheses. A layer-1 unit labelled inside quotes
# ranked in the top 10% of its layer and state's KL ranking with the demo's training seed on
# corpus seeds 0-3, but not with corpus seed 0 and training seed 1112, where only layer 2's
# quote units ranked that high. 20k tokens of valid and test give a stable perplexity and about
# 200 tokens of the rarest class for the analyses.
N_TRAIN = 200_000
N_VALID = 20_000
N_TEST = 20_000
_SPLIT_ORDER = ("train", "valid", "test")  # fixes each split's seed


@dataclass
class SyntheticText:
    """A text and its per-token ground truth, aligned with the token stream a model reads.

    `tokens` is the stream pytorch/examples builds from `lines`: each line split on whitespace,
    then `<eos>` appended (a blank line gives just `<eos>`). A token is inside a span from its
    opening mark up to, but not including, its closing mark: after reading the opening mark the
    span is open, and after reading the closing mark it is closed. `<eos>` is never inside.
    """

    lines: list[str]  # file lines without their newline, in WikiText form
    tokens: list[str]  # T tokens
    word_class: list[str]  # T class names from WORD_CLASSES, or "other"
    in_quotes: np.ndarray  # (T,) bool
    in_parens: np.ndarray  # (T,) bool

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


def class_of(token: str) -> str:
    """The planted class of a token, or "other" for punctuation, numbers, marks and `<unk>`."""
    return _CLASS_OF_WORD.get(token, OTHER)


def generate(seed: int, n_tokens: int) -> SyntheticText:
    """Articles of planted text, deterministic for `seed`, of at least `n_tokens` tokens.

    Generation stops after the paragraph that reaches `n_tokens` (counting `<eos>`), then closes
    the article with a blank line, so the text overshoots by less than one paragraph.
    """
    if n_tokens < 1:
        raise ReportgenError(f"the synthetic text needs at least 1 token, got {n_tokens}")
    grammar = _Grammar(random.Random(seed))
    lines: list[list[_Tok]] = []
    n_written = 0
    while n_written < n_tokens:
        for line in grammar.article():
            lines.append(line)
            n_written += len(line) + 1  # + <eos>
            if n_written >= n_tokens and _is_paragraph(line):
                lines.append([])
                break
    return _from_records(lines)


def ground_truth(tokens: Sequence[str]) -> SyntheticText:
    """The ground truth of a token stream, recomputed from the tokens alone.

    This serves text read back from disk. Quote marks alternate between opening and closing
    within a line; parentheses nest; `<eos>` closes whatever is open, as no span crosses a line.
    """
    lines = [_line_text(words) for words in _split_lines(tokens)]
    quotes = np.zeros(len(tokens), dtype=bool)  # (T,)
    parens = np.zeros(len(tokens), dtype=bool)  # (T,)
    quote_open, paren_depth = False, 0
    for position, token in enumerate(tokens):
        if token == EOS:
            quote_open, paren_depth = False, 0
        elif token == '"':
            quote_open = not quote_open
        elif token == "(":
            paren_depth += 1
        elif token == ")":
            paren_depth = max(paren_depth - 1, 0)
        # an opening mark has already opened its span here, a closing mark has closed it
        quotes[position] = quote_open
        parens[position] = paren_depth > 0
    return SyntheticText(lines=lines, tokens=list(tokens), word_class=[class_of(t) for t in tokens],
                         in_quotes=quotes, in_parens=parens)


def split_seed(seed: int, split: str) -> int:
    """The seed of one split, derived from the corpus seed so that the splits differ."""
    return int(np.random.SeedSequence([seed, _SPLIT_ORDER.index(split)]).generate_state(1)[0])


def write_corpus(folder: Path, seed: int = 0, n_train: int = N_TRAIN, n_valid: int = N_VALID,
                 n_test: int = N_TEST) -> Path:
    """Write `train.txt`, `valid.txt` and `test.txt` (UTF-8) into `folder` and return it.

    Each split is `generate(split_seed(seed, split), size)`, so a test can regenerate its ground
    truth, or recompute it from the file with `ground_truth`.

    Every word of valid and test must occur in train, so that the vocabulary a model is trained
    with covers the whole text; a train split too small for that is an error.
    """
    folder = Path(folder)
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    texts = {split: generate(split_seed(seed, split), size) for split, size in sizes.items()}
    train_words = set(texts["train"].tokens)
    for split in ("valid", "test"):
        missing = sorted(set(texts[split].tokens) - train_words)
        if missing:
            raise ReportgenError(
                f"the synthetic train split of {n_train} tokens lacks {len(missing)} words of "
                f"{split} (for example {missing[0]!r}); use a larger train size")
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        (folder / f"{split}.txt").write_text("\n".join(text.lines) + "\n", encoding="utf-8")
    return folder


class _Tok(NamedTuple):
    """One generated token with the ground truth recorded as it was written."""

    text: str
    word_class: str = OTHER
    in_quotes: bool = False
    in_parens: bool = False


_Chunk = list[_Tok]  # a constituent of a sentence: spans are inserted only between chunks


def _marks(text: str) -> _Chunk:
    return [_Tok(token) for token in text.split()]


def _quoted(content: _Chunk) -> _Chunk:
    """`" content "`, with the opening mark and the content inside, the closing mark outside."""
    inside = [token._replace(in_quotes=True) for token in content]
    return [_Tok('"', in_quotes=True), *inside, _Tok('"')]


def _parenthesised(content: _Chunk) -> _Chunk:
    """`( content )`, with the opening mark and the content inside, the closing mark outside."""
    inside = [token._replace(in_parens=True) for token in content]
    return [_Tok("(", in_parens=True), *inside, _Tok(")")]


class _Grammar:
    """Sentence templates over WORD_CLASSES; every method returns the tokens it wrote."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def word(self, word_class: str) -> _Chunk:
        """A uniformly drawn member of a class, sometimes `<unk>` for open classes."""
        if word_class in ("noun", "adjective", "name") and self.chance(UNK_RATE):
            return [_Tok(UNK)]
        return [_Tok(self.rng.choice(WORD_CLASSES[word_class]), word_class)]

    def one_of(self, *options: tuple[float, Callable[[], _Chunk]]) -> _Chunk:
        """Call one of `(weight, make)` options, drawn by weight."""
        weights = [weight for weight, _ in options]
        _, make = self.rng.choices(options, weights=weights)[0]
        return make()

    # --- articles, paragraphs and headings -------------------------------------------------

    def article(self) -> list[_Chunk]:
        """Lines of one article: title, lead paragraphs, then sections with their own headings."""
        title = [token for _ in range(self.rng.randint(1, 3)) for token in self.word("name")]
        lines = [[], [_Tok("="), *title, _Tok("=")], [], *self.paragraphs(1, 2)]
        for _ in range(self.rng.randint(2, 5)):
            lines += [[], self.heading(depth=2), [], *self.paragraphs(1, 3)]
            if self.chance(0.2):
                lines += [[], self.heading(depth=3), [], *self.paragraphs(1, 2)]
        return [*lines, []]

    def heading(self, depth: int) -> _Chunk:
        words = [token for _ in range(self.rng.randint(1, 2)) for token in self.word("section")]
        return [_Tok("=")] * depth + words + [_Tok("=")] * depth

    def paragraphs(self, least: int, most: int) -> list[_Chunk]:
        return [self.paragraph() for _ in range(self.rng.randint(least, most))]

    def paragraph(self) -> _Chunk:
        return [token for _ in range(self.rng.randint(2, 6)) for token in self.sentence()]

    # --- sentences ---------------------------------------------------------------------------

    def sentence(self) -> _Chunk:
        """Clauses as chunks, spans inserted at chunk boundaries, then `.`.

        A span may stand right before the `.`, which is where remembering it matters most.
        """
        chunks: list[_Chunk] = []
        if self.chance(0.15):
            chunks += [self.prepositional_phrase() + _marks(",")]
        chunks += self.clause()
        if self.chance(0.3):
            joint = _marks(",") + self.word("conjunction") if self.chance(0.8) else _marks(";")
            chunks += [joint, *self.clause()]
        if self.chance(QUOTE_RATE):
            self.insert_span(chunks, self.quote_introducer() + _quoted(self.quote_content()))
        if self.chance(PAREN_RATE):
            self.insert_span(chunks, _parenthesised(self.paren_content()))
        return [token for chunk in chunks for token in chunk] + _marks(".")

    def quote_introducer(self) -> _Chunk:
        """`called`, `known as`, ...: what opens a quote is clear from the word before it."""
        return [_Tok(word, class_of(word)) for word in self.rng.choice(_QUOTE_INTRODUCERS).split()]

    def insert_span(self, chunks: list[_Chunk], span: _Chunk) -> None:
        """Put a span after a random chunk, never before the first nor after a joint.

        Nor after a word of the class the span starts with, which would read `called called`.
        """
        boundaries = [i + 1 for i, chunk in enumerate(chunks)
                      if chunk[-1].text not in (",", ";")
                      and chunk[-1].word_class not in ("conjunction", span[0].word_class)]
        chunks.insert(self.rng.choice(boundaries), span)

    def clause(self) -> list[_Chunk]:
        """Subject, predicate and optional prepositional phrase, as chunks."""
        subject = self.one_of((0.45, lambda: self.word("pronoun")),
                              (0.4, self.noun_phrase),
                              (0.15, self.name_phrase))
        return [subject, *self.predicate()]

    def predicate(self) -> list[_Chunk]:
        """Verb group, object and phrase; `be` follows a modal and `been` follows have."""
        pp = self.optional_prepositional_phrase
        be, been = [_Tok("be", "be")], [_Tok("been", "be")]
        return self.one_of(
            (0.25, lambda: [self.finite_be() + self.word("adjective"), *pp(0.5)]),
            (0.2, lambda: [self.finite_be() + self.word("verb"), *pp(0.8)]),
            (0.2, lambda: [self.word("have") + self.word("verb"), self.object(), *pp(0.4)]),
            (0.1, lambda: [self.word("have") + been + self.word("verb"), *pp(0.8)]),
            (0.1, lambda: [self.word("modal") + be + self.word("adjective"), *pp(0.3)]),
            (0.05, lambda: [self.word("modal") + [_Tok("have", "have")] + self.word("verb"),
                            self.object()]),
            (0.3, lambda: [self.word("verb"), self.object(), *pp(0.5)]),
        )

    def finite_be(self) -> _Chunk:
        return [_Tok(self.rng.choice(_FINITE_BE), "be")]

    def optional_prepositional_phrase(self, probability: float) -> list[_Chunk]:
        return [self.prepositional_phrase()] if self.chance(probability) else []

    def object(self) -> _Chunk:
        return self.one_of((0.7, self.noun_phrase), (0.2, self.name_phrase),
                           (0.1, self.quantity))

    # --- phrases -----------------------------------------------------------------------------

    def noun_phrase(self) -> _Chunk:
        """Article (adjective) noun, or possessive noun: possessives never take an adjective."""
        if self.chance(0.3):
            return self.word("possessive") + self.word("noun")
        adjective = self.word("adjective") if self.chance(0.5) else []
        rest = adjective + self.word("noun")
        return self.article_before(rest[0].text) + rest

    def article_before(self, word: str) -> _Chunk:
        """An article, with `a` and `an` chosen by the next word as in English."""
        article = self.word("article")
        if article[0].text in ("a", "an"):
            vowel = word[0] in "aeiou"
            return [_Tok("an" if vowel else "a", "article")]
        return article

    def name_phrase(self) -> _Chunk:
        name = self.word("name")
        return name + _marks("'s") + self.word("noun") if self.chance(0.25) else name

    def prepositional_phrase(self) -> _Chunk:
        preposition = self.word("preposition")
        return preposition + self.one_of((0.5, self.noun_phrase), (0.1, self.name_phrase),
                                         (0.15, self.year), (0.15, self.month_year),
                                         (0.1, self.date))

    # --- numbers -----------------------------------------------------------------------------

    def year(self) -> _Chunk:
        return [_Tok(str(self.rng.randint(1950, 2009)))]

    def month_year(self) -> _Chunk:
        return self.word("month") + self.year()

    def date(self) -> _Chunk:
        return [_Tok(str(self.rng.randint(1, 28))), *self.month_year()]

    def count(self) -> _Chunk:
        """`12`, `1 @,@ 500` or `3 @.@ 5`, as WikiText writes numbers.

        Numbers stop at 40 so that each number token is common enough to occur in every split.
        """
        return self.one_of(
            (0.5, lambda: [_Tok(str(self.rng.randint(2, 40)))]),
            (0.25, lambda: _marks(f"{self.rng.randint(1, 40)} @,@ "
                                  f"{self.rng.choice(('000', '250', '500', '750'))}")),
            (0.25, lambda: _marks(f"{self.rng.randint(0, 20)} @.@ {self.rng.randint(0, 9)}")),
        )

    def quantity(self) -> _Chunk:
        return self.count() + self.word("unit")

    # --- span contents -----------------------------------------------------------------------

    def quote_content(self) -> _Chunk:
        """A title such as `Fire of the Night` or `Gold and Stone`, 1 to 15 tokens."""
        return self.bounded(self.title)

    def title(self) -> _Chunk:
        """Title words joined by `of`, `in the`, ...: half of the titles are one word."""
        words = self.word("title")
        while self.chance(TITLE_CONTINUES):
            joint = self.rng.choice(_TITLE_JOINTS).split()
            words += [_Tok(word, class_of(word)) for word in joint] + self.word("title")
        return words

    def paren_content(self) -> _Chunk:
        """A quantity, date, name, phrase or clause, 1 to 15 tokens."""
        return self.bounded(lambda: self.one_of(
            (0.25, self.quantity), (0.15, self.year), (0.1, self.date), (0.15, self.name_phrase),
            (0.2, self.prepositional_phrase),
            (0.15, lambda: [token for chunk in self.clause() for token in chunk]),
        ))

    def bounded(self, make: Callable[[], _Chunk]) -> _Chunk:
        """Draw span contents until one fits MAX_SPAN_CONTENT (nearly always the first)."""
        content = make()
        while len(content) > MAX_SPAN_CONTENT:
            content = make()
        return content


def _is_paragraph(line: _Chunk) -> bool:
    return bool(line) and line[0].text != "="


def _line_text(words: Sequence[str]) -> str:
    """A file line in WikiText form: ` w1 w2 ... ` and a single space when blank."""
    return f" {' '.join(words)} " if words else " "


def _split_lines(tokens: Sequence[str]) -> list[list[str]]:
    """Words of each line; a last line without `<eos>` still counts."""
    lines: list[list[str]] = [[]]
    for token in tokens:
        if token == EOS:
            lines.append([])
        else:
            lines[-1].append(token)
    return lines if lines[-1] else lines[:-1]


def _from_records(lines: list[_Chunk]) -> SyntheticText:
    """Flatten generated lines into the token stream, appending `<eos>` to each line."""
    stream = [token for line in lines for token in (*line, _Tok(EOS))]
    return SyntheticText(
        lines=[_line_text([token.text for token in line]) for line in lines],
        tokens=[token.text for token in stream],
        word_class=[token.word_class for token in stream],
        in_quotes=np.array([token.in_quotes for token in stream], dtype=bool),
        in_parens=np.array([token.in_parens for token in stream], dtype=bool),
    )
