"""The built-in corpus's grammar: its word classes and the sentence templates that plant
quoted and parenthesised spans, numbers and headings (the structure `synthetic.py` describes).

Apart from `synthetic.py`, which turns the grammar's articles into a text, its ground truth and
the corpus files: the rules of what is written here, how it is stored and checked there.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

from reportgen.inputs.corpus import UNK

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
    "plural": (),  # the nouns' plurals, filled in below
    "adverb": ("also", "still", "now", "often", "never", "always", "probably", "certainly",
               "clearly", "usually", "already"),
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



def plural_of(noun: str) -> str:
    """The regular English plural: `city` -> `cities`, `church` -> `churches`, `road` -> `roads`."""
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "ch", "sh", "x")) else "s")


# every noun but `series`, whose plural is itself
PLURAL_OF: dict[str, str] = {noun: plural_of(noun) for noun in WORD_CLASSES["noun"]
                             if noun != "series"}
WORD_CLASSES["plural"] = tuple(PLURAL_OF.values())

_CLASS_OF_WORD: dict[str, str] = {
    word: word_class for word_class, words in WORD_CLASSES.items() for word in words
}

# Subject-verb agreement: the finite forms of be and have take the subject's number
_FINITE_BE = {False: ("is", "was"), True: ("are", "were")}  # plural? -> forms
_FINITE_HAVE = {False: ("has", "had"), True: ("have", "had")}
_PLURAL_PRONOUNS = ("they", "we", "you", "I")  # take are, were, have
_ARTICLES = {False: ("the", "a", "this", "that"), True: ("the", "these", "those")}
_QUOTE_INTRODUCERS = ("called", "named", "titled", "known as", "described as")
_TITLE_JOINTS = ("of", "of the", "in", "in the", "on the", "and")  # between a title's words
TITLE_CONTINUES = 0.5  # chance that a title goes on with a joint and another title word

# Rates chosen so spans are frequent enough for a small LSTM to learn a dedicated state.
QUOTE_RATE = 0.6  # share of sentences with a quoted span
PAREN_RATE = 0.25 # share of sentences with a parenthesised span
MAX_SPAN_CONTENT = 15  # tokens strictly between the marks: 1 to 15
UNK_RATE = 0.015  # share of nouns, adjectives and names written as `<unk>`
# Agreement across attractors (Lakretz et al. 2019's templates, planted): a noun subject is
# plural at SUBJECT_PLURAL_RATE, and followed by one or two prepositional phrases, each with a
# noun of either number, at ATTRACTOR_RATE, and by an adverb or two at ADVERB_RATE; be and
# have then agree with the subject, never with the nearer attractor.
SUBJECT_PLURAL_RATE = 0.5
OBJECT_PLURAL_RATE = 0.3  # plural nouns elsewhere, so that a plural noun says nothing alone
ATTRACTOR_RATE = 0.5
SECOND_ATTRACTOR_RATE = 0.3
ADVERB_RATE = 0.2


def class_of(token: str) -> str:
    """The planted class of a token, or "other" for punctuation, numbers, marks and `<unk>`."""
    return _CLASS_OF_WORD.get(token, OTHER)


class Tok(NamedTuple):
    """One generated token with the ground truth recorded as it was written."""

    text: str
    word_class: str = OTHER
    in_quotes: bool = False
    in_parens: bool = False


Chunk = list[Tok]  # a constituent of a sentence: spans are inserted only between chunks


def marks(text: str) -> Chunk:
    return [Tok(token) for token in text.split()]


def quoted(content: Chunk) -> Chunk:
    """`" content "`, with the opening mark and the content inside, the closing mark outside."""
    inside = [token._replace(in_quotes=True) for token in content]
    return [Tok('"', in_quotes=True), *inside, Tok('"')]


def parenthesised(content: Chunk) -> Chunk:
    """`( content )`, with the opening mark and the content inside, the closing mark outside."""
    inside = [token._replace(in_parens=True) for token in content]
    return [Tok("(", in_parens=True), *inside, Tok(")")]


class Grammar:
    """Sentence templates over WORD_CLASSES; every method returns the tokens it wrote."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def word(self, word_class: str) -> Chunk:
        """A uniformly drawn member of a class, sometimes `<unk>` for open classes."""
        if word_class in ("noun", "adjective", "name") and self.chance(UNK_RATE):
            return [Tok(UNK)]
        return [Tok(self.rng.choice(WORD_CLASSES[word_class]), word_class)]

    def one_of(self, *options: tuple[float, Callable[[], Chunk]]) -> Chunk:
        """Call one of `(weight, make)` options, drawn by weight."""
        weights = [weight for weight, _ in options]
        _, make = self.rng.choices(options, weights=weights)[0]
        return make()

    # --- articles, paragraphs and headings -------------------------------------------------

    def article(self) -> list[Chunk]:
        """Lines of one article: title, lead paragraphs, then sections with their own headings."""
        title = [token for _ in range(self.rng.randint(1, 3)) for token in self.word("name")]
        lines = [[], [Tok("="), *title, Tok("=")], [], *self.paragraphs(1, 2)]
        for _ in range(self.rng.randint(2, 5)):
            lines += [[], self.heading(depth=2), [], *self.paragraphs(1, 3)]
            if self.chance(0.2):
                lines += [[], self.heading(depth=3), [], *self.paragraphs(1, 2)]
        return [*lines, []]

    def heading(self, depth: int) -> Chunk:
        words = [token for _ in range(self.rng.randint(1, 2)) for token in self.word("section")]
        return [Tok("=")] * depth + words + [Tok("=")] * depth

    def paragraphs(self, least: int, most: int) -> list[Chunk]:
        return [self.paragraph() for _ in range(self.rng.randint(least, most))]

    def paragraph(self) -> Chunk:
        return [token for _ in range(self.rng.randint(2, 6)) for token in self.sentence()]

    # --- sentences ---------------------------------------------------------------------------

    def sentence(self) -> Chunk:
        """Clauses as chunks, spans inserted at chunk boundaries, then `.`.

        A span may stand right before the `.`, which is where remembering it matters most.
        """
        chunks: list[Chunk] = []
        if self.chance(0.15):
            chunks += [self.prepositional_phrase() + marks(",")]
        chunks += self.clause()
        if self.chance(0.3):
            joint = marks(",") + self.word("conjunction") if self.chance(0.8) else marks(";")
            chunks += [joint, *self.clause()]
        if self.chance(QUOTE_RATE):
            self.insert_span(chunks, self.quote_introducer() + quoted(self.quote_content()))
        if self.chance(PAREN_RATE):
            self.insert_span(chunks, parenthesised(self.paren_content()))
        return [token for chunk in chunks for token in chunk] + marks(".")

    def quote_introducer(self) -> Chunk:
        """`called`, `known as`, ...: what opens a quote is clear from the word before it."""
        return [Tok(word, class_of(word)) for word in self.rng.choice(_QUOTE_INTRODUCERS).split()]

    def insert_span(self, chunks: list[Chunk], span: Chunk) -> None:
        """Put a span after a random chunk, never before the first nor after a joint.

        Nor after a word of the class the span starts with, which would read `called called`.
        """
        boundaries = [i + 1 for i, chunk in enumerate(chunks)
                      if chunk[-1].text not in (",", ";")
                      and chunk[-1].word_class not in ("conjunction", span[0].word_class)]
        chunks.insert(self.rng.choice(boundaries), span)

    def clause(self) -> list[Chunk]:
        """Subject, predicate and optional prepositional phrase, as chunks; the finite be or
        have of the predicate agrees with the subject's number."""
        kind = self.rng.choices(("pronoun", "noun", "name"), weights=(0.45, 0.4, 0.15))[0]
        if kind == "pronoun":
            subject = self.word("pronoun")
            plural = subject[0].text in _PLURAL_PRONOUNS
        elif kind == "noun":
            plural = self.chance(SUBJECT_PLURAL_RATE)
            subject = self.noun_phrase(plural) + self.attractors()
        else:
            subject, plural = self.name_phrase(), False
        if kind != "pronoun" and self.chance(ADVERB_RATE):
            subject += self.adverbs()
        return [subject, *self.predicate(plural)]

    def attractors(self) -> Chunk:
        """Nothing, or one or two prepositional phrases of a noun of either number, between
        a subject and its verb: `the army near the towers of the city is`."""
        if not self.chance(ATTRACTOR_RATE):
            return []
        count = 2 if self.chance(SECOND_ATTRACTOR_RATE) else 1
        return [token for _ in range(count) for token in
                self.word("preposition") + self.noun_phrase(self.chance(0.5))]

    def adverbs(self) -> Chunk:
        """`also`, `still often` or `now and always`."""
        first, second = (Tok(word, "adverb") for word in self.rng.sample(WORD_CLASSES["adverb"], 2))
        return self.one_of((0.6, lambda: [first]), (0.2, lambda: [first, second]),
                           (0.2, lambda: [first, Tok("and", "conjunction"), second]))

    def predicate(self, plural: bool) -> list[Chunk]:
        """Verb group, object and phrase; `be` follows a modal and `been` follows have."""
        pp = self.optional_prepositional_phrase
        be, been = [Tok("be", "be")], [Tok("been", "be")]
        def finite_be() -> Chunk:
            return [Tok(self.rng.choice(_FINITE_BE[plural]), "be")]

        def have() -> Chunk:
            return [Tok(self.rng.choice(_FINITE_HAVE[plural]), "have")]

        return self.one_of(
            (0.25, lambda: [finite_be() + self.word("adjective"), *pp(0.5)]),
            (0.2, lambda: [finite_be() + self.word("verb"), *pp(0.8)]),
            (0.2, lambda: [have() + self.word("verb"), self.object(), *pp(0.4)]),
            (0.1, lambda: [have() + been + self.word("verb"), *pp(0.8)]),
            (0.1, lambda: [self.word("modal") + be + self.word("adjective"), *pp(0.3)]),
            (0.05, lambda: [self.word("modal") + [Tok("have", "have")] + self.word("verb"),
                            self.object()]),
            (0.3, lambda: [self.word("verb"), self.object(), *pp(0.5)]),
        )

    def optional_prepositional_phrase(self, probability: float) -> list[Chunk]:
        return [self.prepositional_phrase()] if self.chance(probability) else []

    def object(self) -> Chunk:
        return self.one_of((0.7, self.any_noun_phrase), (0.2, self.name_phrase),
                           (0.1, self.quantity))

    # --- phrases -----------------------------------------------------------------------------

    def any_noun_phrase(self) -> Chunk:
        return self.noun_phrase(self.chance(OBJECT_PLURAL_RATE))

    def noun_phrase(self, plural: bool = False) -> Chunk:
        """Article (adjective) noun, or possessive noun: possessives never take an adjective.
        A plural takes `the`, `these` or `those`, a singular `the`, `a`, `an`, `this`, `that`."""
        noun = self.plural_noun() if plural else self.word("noun")
        if self.chance(0.3):
            return self.word("possessive") + noun
        adjective = self.word("adjective") if self.chance(0.5) else []
        rest = adjective + noun
        return self.article_before(rest[0].text, plural) + rest

    def plural_noun(self) -> Chunk:
        if self.chance(UNK_RATE):
            return [Tok(UNK)]
        return [Tok(self.rng.choice(WORD_CLASSES["plural"]), "plural")]

    def article_before(self, word: str, plural: bool) -> Chunk:
        """An article of the noun's number, with `a` and `an` chosen by the next word."""
        article = self.rng.choice(_ARTICLES[plural])
        if article == "a" and word[0] in "aeiou":
            article = "an"
        return [Tok(article, "article")]

    def name_phrase(self) -> Chunk:
        name = self.word("name")
        return name + marks("'s") + self.word("noun") if self.chance(0.25) else name

    def prepositional_phrase(self) -> Chunk:
        preposition = self.word("preposition")
        return preposition + self.one_of((0.5, self.any_noun_phrase), (0.1, self.name_phrase),
                                         (0.15, self.year), (0.15, self.month_year),
                                         (0.1, self.date))

    # --- numbers -----------------------------------------------------------------------------

    def year(self) -> Chunk:
        return [Tok(str(self.rng.randint(1950, 2009)))]

    def month_year(self) -> Chunk:
        return self.word("month") + self.year()

    def date(self) -> Chunk:
        return [Tok(str(self.rng.randint(1, 28))), *self.month_year()]

    def count(self) -> Chunk:
        """`12`, `1 @,@ 500` or `3 @.@ 5`, as WikiText writes numbers.

        Numbers stop at 40 so that each number token is common enough to occur in every split.
        """
        return self.one_of(
            (0.5, lambda: [Tok(str(self.rng.randint(2, 40)))]),
            (0.25, lambda: marks(f"{self.rng.randint(1, 40)} @,@ "
                                  f"{self.rng.choice(('000', '250', '500', '750'))}")),
            (0.25, lambda: marks(f"{self.rng.randint(0, 20)} @.@ {self.rng.randint(0, 9)}")),
        )

    def quantity(self) -> Chunk:
        return self.count() + self.word("unit")

    # --- span contents -----------------------------------------------------------------------

    def quote_content(self) -> Chunk:
        """A title such as `Fire of the Night` or `Gold and Stone`, 1 to 15 tokens."""
        return self.bounded(self.title)

    def title(self) -> Chunk:
        """Title words joined by `of`, `in the`, ...: half of the titles are one word."""
        words = self.word("title")
        while self.chance(TITLE_CONTINUES):
            joint = self.rng.choice(_TITLE_JOINTS).split()
            words += [Tok(word, class_of(word)) for word in joint] + self.word("title")
        return words

    def paren_content(self) -> Chunk:
        """A quantity, date, name, phrase or clause, 1 to 15 tokens."""
        return self.bounded(lambda: self.one_of(
            (0.25, self.quantity), (0.15, self.year), (0.1, self.date), (0.15, self.name_phrase),
            (0.2, self.prepositional_phrase),
            (0.15, lambda: [token for chunk in self.clause() for token in chunk]),
        ))

    def bounded(self, make: Callable[[], Chunk]) -> Chunk:
        """Draw span contents until one fits MAX_SPAN_CONTENT (nearly always the first)."""
        content = make()
        while len(content) > MAX_SPAN_CONTENT:
            content = make()
        return content
