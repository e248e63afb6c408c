"""Token features on hand-written token lists."""

import numpy as np
import pytest

from reportgen.inputs.features import (
    FEATURES,
    WORD_CLASS_FEATURES,
    in_heading,
    in_parens,
    in_quotes,
    next_is_eos,
    next_is_number,
    token_features,
)
from reportgen.training import synthetic


def flags(text: str) -> list[bool]:
    """'1' -> True, '0' -> False, one per token."""
    return [c == "1" for c in text]


def test_quotes_opening_mark_inside_closing_mark_outside():
    tokens = ["He", "said", '"', "hi", "there", '"', "and", "left"]
    np.testing.assert_array_equal(in_quotes(tokens), flags("00111000"))


def test_quotes_reset_at_end_of_line():
    tokens = ['"', "unclosed", "<eos>", "next", '"', "x", '"']
    np.testing.assert_array_equal(in_quotes(tokens), flags("1100110"))


def test_typographic_quotes_open_and_close():
    tokens = ["a", "\u201c", "b", "\u201d", "c"]
    np.testing.assert_array_equal(in_quotes(tokens), flags("01100"))


def test_parentheses_nest_and_never_go_below_zero():
    tokens = ["(", "a", "(", "b", ")", "c", ")", "d", ")", "(", "e"]
    np.testing.assert_array_equal(in_parens(tokens), flags("11111100011"))
    np.testing.assert_array_equal(in_parens(["(", "a", "<eos>", "b"]), flags("1100"))


def test_next_is_number_includes_wikitext_number_glue():
    tokens = ["in", "1998", ",", "1", "@,@", "000", "people", "3.5", "x", "1990s", "y", "@-@", "z", "7"]
    # next tokens: 1998 , 1 @,@ 000 people 3.5 x 1990s y @-@ z 7 (none)
    np.testing.assert_array_equal(next_is_number(tokens), flags("10111010000010"))


def test_next_is_eos():
    tokens = ["a", "b", "<eos>", "<eos>", "c", "<eos>"]
    np.testing.assert_array_equal(next_is_eos(tokens), flags("011010"))


def test_heading_lines_between_eos_marks():
    tokens = [
        "=", "Valkyria", "=", "<eos>",
        "<eos>",
        "=", "=", "Gameplay", "=", "=", "<eos>",
        "The", "game", "=", "x", "<eos>",
        "=", "Last", "=",
    ]
    expected = flags("1110" + "0" + "111110" + "00000" + "111")
    np.testing.assert_array_equal(in_heading(tokens), expected)


def test_token_features_has_every_registered_feature_in_order():
    tokens = ["=", "A", "=", "<eos>", "x", '"', "(", "3", ")", '"', "<eos>"]
    features = token_features(tokens)
    assert features.names == [name for name, _ in FEATURES] + list(WORD_CLASS_FEATURES)
    assert features.n_tokens == len(tokens)
    np.testing.assert_array_equal(features.values["in_quotes"], in_quotes(tokens))
    frame = features.to_frame()
    assert list(frame.columns) == features.names
    assert frame.index.name == "position" and len(frame) == len(tokens)
    assert frame.dtypes.eq(bool).all()
    assert features.matrix().shape == (len(tokens), len(FEATURES) + len(WORD_CLASS_FEATURES))


def test_empty_and_markup_like_tokens_are_just_tokens():
    assert all(len(values) == 0 for values in token_features([]).values.values())
    tokens = ["</script>", "<script>", '"', "{{", "}}"]
    np.testing.assert_array_equal(in_quotes(tokens), flags("00111"))


def test_word_classes_as_wikitext_writes_them():
    tokens = ["He", "said", "her", "book", "'s", "May", "may", ",", "@,@", "=", "=", "<eos>",
              "(", "Has", "been", "and", "of", "the"]
    features = token_features(tokens)
    on = {name[3:]: [tokens[t] for t in np.flatnonzero(features.values[name])]
          for name in WORD_CLASS_FEATURES}
    assert on["pronoun"] == ["He", "her"]
    assert on["possessive"] == ["her", "'s"]  # her is both
    assert on["month"] == ["May"]  # the month, not the modal
    assert on["punctuation"] == [",", "("]  # not the number glue, not the heading marks
    assert on["heading_markup"] == ["=", "="]
    assert on["have"] == ["Has"] and on["be"] == ["been"]
    assert on["conjunction"] == ["and"] and on["preposition"] == ["of"] and on["article"] == ["the"]


def test_word_classes_cover_the_built_in_corpus_classes():
    text = synthetic.generate(seed=1, n_tokens=3000)
    features = token_features(text.tokens)
    for planted in ("pronoun", "be", "have", "conjunction", "preposition", "possessive", "month"):
        members = np.array([c == planted for c in text.word_class])
        assert features.values[f"is_{planted}"][members].all(), planted


def test_own_features_join_the_built_in_ones():
    tokens = ["a", "red", "b"]
    features = token_features(tokens, {"is_colour": np.array([0, 1, 0])}, {"is_colour": "colours"})
    assert features.names[-1] == "is_colour" and features.description("is_colour") == "colours"
    assert features.values["is_colour"].dtype == bool
    with pytest.raises(ValueError):
        token_features(tokens, {"in_quotes": np.zeros(3, bool)})
