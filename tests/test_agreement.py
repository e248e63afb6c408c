"""Number agreement: the suites (built-in templates, both file formats, words outside the
vocabulary), the Wilson interval, and accuracies against an independent computation that steps
`nn.LSTMCell` from a zero state after one `<eos>`."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from stepwise import stepped_verb_log_probs

from reportgen.analysis.agreement import analyse_agreement, wilson_interval
from reportgen.errors import ReportgenError
from reportgen.inputs.agreement_suites import (
    BUILT_IN,
    TEMPLATES,
    AgreementItem,
    built_in_suite,
    congruence,
    read_agreement_file,
)
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import vocabulary_from_folder

NA_TASK = ("The boy near the cars greets\tsingular_plural\tcorrect\t1\n"
           "The boy near the cars greet\tsingular_plural\twrong\t1\n"
           "\n"
           "The boys greet\tplural\twrong\t2\n"
           "The boys greets\tplural\tcorrect\t2\n")


def test_the_na_task_format_pairs_lines_into_items(tmp_path: Path) -> None:
    path = tmp_path / "nounpp.tsv"
    path.write_text(NA_TASK, encoding="utf-8")
    read = read_agreement_file(path)
    assert read.name == "nounpp.tsv"
    assert read.items == [
        AgreementItem("nounpp", "singular_plural", ("The", "boy", "near", "the", "cars"),
                      "greets", "greet"),
        AgreementItem("nounpp", "plural", ("The", "boys"), "greets", "greet"),
    ]
    assert congruence("singular_plural") == "incongruent" and congruence("plural") is None


@pytest.mark.parametrize("text, line, message", [
    ("The boy greets\tsingular\tright\t1\n", 1, "correct|wrong"),
    ("The boy greets\tsingular\tcorrect\t1\nThe girl greet\tsingular\twrong\t1\n", 2,
     "differ only in their last word"),
    ("The boy greets\tsingular\tcorrect\t1\n", 1, "no partner"),
    ("greets\tsingular\tcorrect\t1\ngreet\tsingular\twrong\t1\n", 1, "prefix"),
])
def test_a_malformed_na_task_line_is_one_error_naming_file_and_line(
        tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReportgenError, match=f"bad.tsv:{line}: .*{message}"):
        read_agreement_file(path)


def test_the_text_and_gold_format_reads_index_forms_and_attractors(tmp_path: Path) -> None:
    (tmp_path / "generated.text").write_text(
        "the keys to the cabinet are on the table\nthe author laughs\n", encoding="utf-8")
    (tmp_path / "generated.gold").write_text("5\tare\tis\t1\textra\n2 laughs laugh 0\n",
                                             encoding="utf-8")
    for given in ("generated.text", "generated.gold"):
        read = read_agreement_file(tmp_path / given)
        assert read.name == "generated.text"
        assert read.items == [
            AgreementItem("generated", "1 attractor", ("the", "keys", "to", "the", "cabinet"),
                          "are", "is"),
            AgreementItem("generated", "0 attractors", ("the", "author"), "laughs", "laugh"),
        ]


@pytest.mark.parametrize("gold, message", [
    ("5\tare\tis\t1\nx laughs laugh 0\n", "generated.gold:2: expected target index"),
    ("5\tare\tis\t1\n9 laughs laugh 0\n", "generated.gold:2: target index 9 is outside"),
    ("5\tare\tis\t1\n", "has 1 lines but generated.text has 2"),
])
def test_a_malformed_gold_line_is_one_error(tmp_path: Path, gold: str, message: str) -> None:
    (tmp_path / "generated.text").write_text(
        "the keys to the cabinet are on the table\nthe author laughs\n", encoding="utf-8")
    (tmp_path / "generated.gold").write_text(gold, encoding="utf-8")
    with pytest.raises(ReportgenError, match=message):
        read_agreement_file(tmp_path / "generated.text")


def test_items_with_a_word_outside_the_vocabulary_are_skipped_and_counted(
        tmp_path: Path) -> None:
    path = tmp_path / "nounpp.tsv"
    path.write_text(NA_TASK, encoding="utf-8")
    vocabulary = {"The", "boy", "boys", "near", "the", "greets", "greet"}  # no "cars"
    suite = read_agreement_file(path).suite(vocabulary)
    assert [item.prefix for item in suite.items] == [("The", "boys")]
    assert suite.skipped == {"nounpp": 1}
    assert read_agreement_file(path).suite(vocabulary | {"cars"}).skipped == {}


def quadratic_wilson(correct: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson interval as the two roots in p of (p_hat - p)^2 = z^2 p (1 - p) / n."""
    p_hat, k = correct / n, z * z / n
    roots = np.roots([1 + k, -(2 * p_hat + k), p_hat * p_hat])
    return float(min(roots)), float(max(roots))


@pytest.mark.parametrize("correct, n", [(8, 10), (0, 5), (5, 5), (137, 200), (1, 1000)])
def test_the_wilson_interval_matches_its_closed_form(correct: int, n: int) -> None:
    low, high = wilson_interval(correct, n)
    reference = quadratic_wilson(correct, n, 1.959963984540054)
    assert (low, high) == pytest.approx(reference, abs=1e-9)
    assert low <= correct / n <= high
    assert all(math.isnan(value) for value in wilson_interval(0, 0))


def test_the_wilson_interval_matches_a_published_value() -> None:
    # Newcombe (1998), Statistics in Medicine 17, Table I, example (a): 81 of 263
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_the_built_in_suite_keeps_known_pairs_balances_conditions_and_is_seeded() -> None:
    vocabulary = ["the", "boy", "boys", "car", "cars", "is", "are", "greets", "near", "also",
                  "still", "and", "John", "girl"]  # "girls" missing: girl/girls is lacking
    suite = built_in_suite(vocabulary, seed=1)
    counts = Counter((item.task, item.condition) for item in suite.items)
    assert {task for task, _ in counts} == set(TEMPLATES)
    for task in TEMPLATES:
        per_condition = {count for (t, _), count in counts.items() if t == task}
        assert len(per_condition) == 1, task  # balanced
    assert {c for t, c in counts if t == "noun PP"} == {"SS", "SP", "PS", "PP"}
    for item in suite.items:
        assert set(item.words()) <= set(vocabulary)
        subject_plural = item.prefix[1] == "boys"
        assert item.correct == ("are" if subject_plural else "is")
        if item.task == "noun PP":
            assert (item.prefix[4] in ("cars", "boys")) == (item.condition[1] == "P")
    assert "girl/girls" in suite.lacking and "greets/greet" in suite.lacking
    assert suite.items == built_in_suite(vocabulary, seed=1).items
    assert suite.items != built_in_suite(vocabulary, seed=2).items


def test_a_vocabulary_without_pairs_gives_an_empty_suite_that_says_what_it_lacks() -> None:
    suite = built_in_suite(["the", "boy", "is", "near"])
    assert suite.name == BUILT_IN and suite.items == []
    assert "boy/boys" in suite.lacking and "is/are" in suite.lacking


def test_accuracies_equal_a_stepped_lstm_cell_on_the_same_items(tiny_corpus: Path,
                                                                tiny_model: Path) -> None:
    words = vocabulary_from_folder(tiny_corpus).words
    model = load_checkpoint(tiny_model).model
    suite = built_in_suite(words, seed=0, per_condition=12)
    assert {item.task for item in suite.items} == set(TEMPLATES)
    result = analyse_agreement(model, [suite], words, device="cpu")
    reference = stepped_verb_log_probs(model, suite.items, words)  # (N, 2)
    assert np.abs(result.log_p_correct - reference[:, 0]).max() < 1e-4
    assert np.abs(result.log_p_wrong - reference[:, 1]).max() < 1e-4
    right = reference[:, 0] > reference[:, 1]
    for score in result.scores:
        members = [i for i, item in enumerate(suite.items)
                   if (item.task, item.condition) == (score.task, score.condition)]
        assert score.n == len(members)
        assert score.accuracy == pytest.approx(right[members].mean(), abs=1e-3)
    assert sum(score.n for score in result.scores) == len(suite.items)


@pytest.mark.slow
def test_demo_accuracies_equal_a_stepped_lstm_cell(demo_model: tuple[Path, Path]) -> None:
    corpus, checkpoint = demo_model
    words = vocabulary_from_folder(corpus).words
    model = load_checkpoint(checkpoint).model
    suite = built_in_suite(words, seed=0, per_condition=25)
    result = analyse_agreement(model, [suite], words, device="cpu")
    reference = stepped_verb_log_probs(model, suite.items, words)  # (N, 2)
    right = reference[:, 0] > reference[:, 1]
    for score in result.scores:
        members = [i for i, item in enumerate(suite.items)
                   if (item.task, item.condition) == (score.task, score.condition)]
        assert score.n == len(members) == 25
        assert score.accuracy == pytest.approx(right[members].mean(), abs=1e-3)
