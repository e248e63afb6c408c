"""The built-in corpus: deterministic, WikiText-shaped, and its planted structure as documented."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from reportgen.errors import ReportgenError
from reportgen.training.synthetic import (
    SyntheticText,
    generate,
    ground_truth,
    split_seed,
    write_corpus,
)
from reportgen.training.synthetic_grammar import MAX_SPAN_CONTENT, WORD_CLASSES

N_TOKENS = 30_000


@pytest.fixture(scope="module")
def text() -> SyntheticText:
    return generate(seed=7, n_tokens=N_TOKENS)


def stream_of(lines: list[str]) -> list[str]:
    """The token stream as pytorch/examples `data.Corpus` reads a file's lines."""
    return [word for line in lines for word in line.split() + ["<eos>"]]


def spans(words: list[str], opening: str, closing: str) -> list[tuple[int, int]]:
    """(start, end) indices of each opening mark and its closing mark in one line's words."""
    marks = [i for i, word in enumerate(words) if word in (opening, closing)]
    return list(zip(marks[::2], marks[1::2]))


def test_same_seed_gives_same_text_and_other_seeds_differ(text):
    again = generate(seed=7, n_tokens=N_TOKENS)
    assert again.lines == text.lines
    assert again.word_class == text.word_class
    assert np.array_equal(again.in_quotes, text.in_quotes)
    assert generate(seed=8, n_tokens=N_TOKENS).lines[:50] != text.lines[:50]


def test_size_reaches_the_request_and_stops_within_a_paragraph(text):
    longest_line = max(len(line.split()) for line in text.lines) + 1
    assert N_TOKENS <= text.n_tokens < N_TOKENS + longest_line + 1
    assert len(text.word_class) == len(text.in_quotes) == len(text.in_parens) == text.n_tokens


def test_lines_have_the_wikitext_layout(text):
    assert text.tokens == stream_of(text.lines)
    for line in text.lines:
        assert line == " " or (line.startswith(" ") and line.endswith(" ") and "  " not in line)
    heading_rows = [i for i, line in enumerate(text.lines) if line.startswith(" =")]
    depths = Counter()
    for i in heading_rows:
        words = text.lines[i].split()
        depth = next(j for j, word in enumerate(words) if word != "=")
        title = words[depth:-depth]
        assert words[-depth:] == ["="] * depth and title and "=" not in title, text.lines[i]
        assert text.lines[i - 1] == " " and text.lines[i + 1] == " "
        depths[depth] += 1
    assert set(depths) == {1, 2, 3}
    assert text.lines[-1] == " " and text.lines[-2].strip()[-1] == "."


def test_spans_are_balanced_short_and_never_hold_a_sentence_end(text):
    lengths = {'"': Counter(), "(": Counter()}
    for line in text.lines:
        words = line.split()
        assert words.count('"') % 2 == 0
        assert words.count("(") == words.count(")")
        for opening, closing in (('"', '"'), ("(", ")")):
            for start, end in spans(words, opening, closing):
                assert words[start] == opening and words[end] == closing
                assert opening == "(" or words[start - 1] in ("called", "named", "titled", "as")
                inside = words[start + 1:end]
                assert "." not in inside and ";" not in inside and "(" not in inside
                assert '"' not in inside
                lengths[opening][len(inside)] += 1
    tokens = np.array(text.tokens)  # (T,)
    assert not (text.in_quotes | text.in_parens)[tokens == "."].any()
    for counts in lengths.values():
        assert min(counts) == 1 and max(counts) <= MAX_SPAN_CONTENT


def test_spans_reach_ten_tokens():
    """Parenthesised spans of 10 or more tokens are about 1% of them: a larger sample finds them."""
    longest = {'"': 0, "(": 0}
    for line in generate(seed=7, n_tokens=100_000).lines:
        words = line.split()
        for opening, closing in (('"', '"'), ("(", ")")):
            for start, end in spans(words, opening, closing):
                longest[opening] = max(longest[opening], end - start - 1)
    assert min(longest.values()) >= 10, longest


def test_spans_are_frequent(text):
    sentences = text.tokens.count(".")
    assert text.tokens.count('"') / 2 > 0.25 * sentences
    assert text.tokens.count("(") > 0.2 * sentences


def test_numbers_take_the_wikitext_forms(text):
    joined = " ".join(text.tokens)
    assert re.search(r" \d+ @,@ \d{3} ", joined) and re.search(r" \d+ @\.@ \d ", joined)
    months = "|".join(WORD_CLASSES["month"])
    assert re.search(rf" (?:{months}) (?:19[5-9]\d|200\d) ", joined)
    assert re.search(rf" \d+ (?:{months}) \d{{4}} ", joined)
    assert "<unk>" in text.tokens


def test_each_word_has_one_class_and_every_member_is_used(text):
    words = [word for members in WORD_CLASSES.values() for word in members]
    assert len(words) == len(set(words))
    for name, members in WORD_CLASSES.items():
        assert len(members) >= (3 if name == "have" else 5), name
        used = {t for t, c in zip(text.tokens, text.word_class) if c == name}
        assert used == set(members), name
    class_of = {word: name for name, members in WORD_CLASSES.items() for word in members}
    for token, word_class in zip(text.tokens, text.word_class):
        assert word_class == class_of.get(token, "other")
        assert word_class != "other" or not token.isalpha()


def test_classes_have_their_planted_contexts(text):
    following = {name: Counter() for name in WORD_CLASSES}
    for word_class, next_class in zip(text.word_class, text.word_class[1:]):
        if word_class in following:
            following[word_class][next_class] += 1
    assert set(following["possessive"]) == {"noun", "plural", "other"}  # other: `<unk>`
    assert set(following["pronoun"]) <= {"be", "have", "modal", "verb", "other"}  # other: marks
    determiners = following["preposition"]["article"] + following["preposition"]["possessive"]
    assert determiners > 0.4 * sum(following["preposition"].values())


SINGULAR_FORMS, PLURAL_FORMS = {"is", "was", "has"}, {"are", "were", "have"}


def agreement_checks(text: SyntheticText) -> list[tuple[bool, bool, str]]:
    """(subject plural, attractor plural or None, verb) of each sentence-initial noun subject
    followed, across prepositional phrases and adverbs, by a finite be or have."""
    found = []
    classes, tokens = text.word_class, text.tokens
    for start in range(1, len(tokens) - 12):
        if tokens[start - 1] not in (".", "<eos>") or classes[start] not in ("article",
                                                                              "possessive"):
            continue
        at, nouns = start, []
        while True:
            at += 1 + (classes[at + 1] == "adjective")
            if classes[at] not in ("noun", "plural"):
                break
            nouns.append(classes[at] == "plural")
            if classes[at + 1] != "preposition" or classes[at + 2] not in ("article",
                                                                           "possessive"):
                break
            at += 2
        at += 1
        while classes[at] == "adverb" or tokens[at] == "and":
            at += 1
        if nouns and tokens[at] in SINGULAR_FORMS | PLURAL_FORMS:
            found.append((nouns[0], nouns[-1] if len(nouns) > 1 else None, tokens[at]))
    return found


def test_be_and_have_agree_with_the_subject_across_attractors(text):
    checks = agreement_checks(text)
    across = [check for check in checks if check[1] is not None and check[1] != check[0]]
    assert len(checks) > 100 and len(across) > 30, (len(checks), len(across))
    for plural, _, verb in checks:
        assert verb in (PLURAL_FORMS if plural else SINGULAR_FORMS)


def test_ground_truth_from_tokens_agrees_with_the_generated_record(text):
    recomputed = ground_truth(text.tokens)
    assert recomputed.lines == text.lines
    assert recomputed.tokens == text.tokens
    assert recomputed.word_class == text.word_class
    assert np.array_equal(recomputed.in_quotes, text.in_quotes)
    assert np.array_equal(recomputed.in_parens, text.in_parens)


def test_inside_means_from_the_opening_mark_to_before_the_closing_mark():
    truth = ground_truth('he said " a ( b ) " . <eos> ( x " y " ) <eos>'.split())
    assert truth.in_quotes.tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert truth.in_parens.tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert truth.lines == [' he said " a ( b ) " . ', ' ( x " y " ) ']


def test_an_unclosed_span_ends_at_the_line_end():
    truth = ground_truth('" a <eos> b'.split())
    assert truth.in_quotes.tolist() == [True, True, False, False]
    assert truth.lines == [' " a ', " b "]


def test_written_corpus_reads_back_and_train_covers_the_vocabulary(tmp_path: Path):
    sizes = {"train": 60_000, "valid": 4_000, "test": 4_000}
    folder = write_corpus(tmp_path / "data", seed=3, n_train=sizes["train"],
                          n_valid=sizes["valid"], n_test=sizes["test"])
    streams = {}
    for split, size in sizes.items():
        raw = (folder / f"{split}.txt").read_bytes()
        assert raw.endswith(b" \n") and raw.decode("utf-8")
        with open(folder / f"{split}.txt", encoding="utf-8") as lines:
            streams[split] = [word for line in lines for word in line.split() + ["<eos>"]]
        expected = generate(split_seed(3, split), size)
        assert streams[split] == expected.tokens
        assert ground_truth(streams[split]).word_class == expected.word_class
    assert streams["train"][:200] != streams["valid"][:200] != streams["test"][:200]
    assert set(streams["valid"]) | set(streams["test"]) <= set(streams["train"])


def test_a_train_split_too_small_for_the_vocabulary_is_refused(tmp_path: Path):
    with pytest.raises(ReportgenError, match="larger train size"):
        write_corpus(tmp_path, n_train=200, n_valid=5_000, n_test=5_000)
    assert not (tmp_path / "train.txt").exists()


def test_split_seeds_differ_across_splits_and_corpus_seeds():
    seeds = {split_seed(seed, split) for seed in range(5) for split in ("train", "valid", "test")}
    assert len(seeds) == 15
