"""Concepts: AUROC against scikit-learn, labels, and planted neurons that must be found."""

import numpy as np
import pytest
from captures import make_capture
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from reportgen.analysis.concepts import (
    analyse_concepts,
    average_ranks,
    label_neurons,
    neuron_aurocs,
    neuron_aurocs_with_words,
)
from reportgen.analysis.distributions import analyse_distributions
from reportgen.errors import ReportgenError
from reportgen.inputs.features import token_features
from reportgen.training import synthetic


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_auroc_equals_sklearn_with_ties(dtype):
    rng = np.random.default_rng(0)
    values = rng.integers(-3, 4, (300, 9)).astype(dtype) / 4  # few distinct values: many ties
    values[:, 4] = 0.25  # a constant neuron: every pair tied
    positives = rng.random((300, 3)) < [[0.1, 0.5, 0.8]]
    auroc = neuron_aurocs(values, positives, chunk_values=600)  # two neurons per chunk
    for neuron in range(9):
        for feature in range(3):
            expected = roc_auc_score(positives[:, feature], values[:, neuron].astype(np.float64))
            assert auroc[neuron, feature] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(auroc, neuron_aurocs(values, positives))


def test_feature_without_positives_or_negatives_has_no_auroc():
    values = np.arange(10, dtype=np.float32)[:, None]
    positives = np.stack([np.zeros(10, bool), np.ones(10, bool), np.arange(10) >= 5], axis=1)
    auroc = neuron_aurocs(values, positives)
    assert np.isnan(auroc[0, 0]) and np.isnan(auroc[0, 1]) and auroc[0, 2] == 1.0


def test_labels_are_every_feature_past_the_threshold_strongest_first():
    auroc = np.array([
        [0.95, 0.5],  # high on f0
        [0.5, 0.05],  # low on f1: labelled, with its AUROC below 0.5
        [0.85, 0.2],  # 0.35 and 0.3 from chance: no label
        [np.nan, 0.9],  # exactly at the threshold
        [0.1, np.nan],  # exactly at the threshold, below chance
        [np.nan, np.nan],
        [0.92, 0.02],  # both: f1 is the stronger
    ])
    decided = np.array([True, True])  # the word decides both: the AUROC alone labels
    within = np.full_like(auroc, np.nan)
    labels = label_neurons(auroc, within, decided, ("f0", "f1"), threshold=0.4, word_share=1.0)
    assert labels == [(("f0", 0.95),), (("f1", 0.05),), (), (("f1", 0.9),), (("f0", 0.1),), (),
                      (("f1", 0.02), ("f0", 0.92))]
    exact = label_neurons(np.array([[19 / 20], [1 / 20]]), np.full((2, 1), np.nan),
                          np.array([True]), ("f",), threshold=0.45, word_share=1.0)
    assert [bool(item) for item in exact] == [True, True]


def test_a_feature_the_word_does_not_decide_needs_its_within_word_auroc_too():
    auroc = np.array([[0.95], [0.95], [0.95], [0.05], [0.95]])
    within = np.array([[0.9], [0.6], [np.nan], [0.1], [0.1]])  # memory, word, unknown, low, flipped
    labels = label_neurons(auroc, within, np.array([False]), ("f",), 0.4, within_threshold=0.3)
    assert [bool(item) for item in labels] == [True, False, False, True, False]


def test_a_feature_the_word_decides_labels_only_the_farthest_tenth():
    """146 of 200 units past the threshold for a word class: only those among the 20 farthest
    from chance keep the label; ties at the cut all lose it; a feature the word does not decide
    is untouched. Expected sets recomputed by sorting."""
    rng = np.random.default_rng(7)
    word_class = np.full(200, 0.6)
    word_class[:146] = rng.uniform(0.905, 0.999, 146)  # 146 pass the threshold
    word_class[146:150] = 0.0005  # the strongest four, tied: low on it
    memory = np.full(200, 0.95)  # a feature the word does not decide, with memory
    tied = np.full(200, 0.5)
    tied[:30] = 1.0  # 30 units separate the words perfectly
    auroc = np.column_stack([word_class, memory, tied])  # (200, 3)
    within = np.column_stack([np.full(200, np.nan), np.full(200, 0.9), np.full(200, np.nan)])
    decided = np.array([True, False, True])
    labels = label_neurons(auroc, within, decided, ("is_month", "in_quotes", "is_eq"))
    held = {f: {n for n, items in enumerate(labels) if f in dict(items)}
            for f in ("is_month", "in_quotes", "is_eq")}
    distance = np.abs(word_class - 0.5)
    assert held["is_month"] == set(np.argsort(-distance, kind="stable")[:20].tolist())
    assert {146, 147, 148, 149} <= held["is_month"]
    assert len(held["in_quotes"]) == 200  # the within-word rule alone
    assert held["is_eq"] == set()  # 30 tied at the top: none stands out
    before = label_neurons(auroc, within, decided, ("is_month", "in_quotes", "is_eq"),
                           word_share=1.0)
    assert sum("is_month" in dict(items) for items in before) == 150
    small = label_neurons(np.array([[0.95], [0.99], [0.5]]), np.full((3, 1), np.nan),
                          np.array([True]), ("f",))
    assert [dict(items) for items in small] == [{}, {"f": 0.99}, {}]  # at least one unit


def test_word_share_is_checked():
    capture, features = planted_capture(n_tokens=50)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ReportgenError, match="word-label-share"):
            analyse_concepts(capture, features, word_share=bad)


def test_within_word_auroc_equals_pooled_sklearn_per_word():
    rng = np.random.default_rng(3)
    n_tokens = 1500
    words = rng.integers(0, 7, n_tokens)
    values = (rng.integers(-4, 5, (n_tokens, 4)) / 4).astype(np.float32)  # many ties
    positives = np.stack([rng.random(n_tokens) < 0.3,  # mixed in every word
                          words == 2,  # decided by the word
                          (rng.random(n_tokens) < 0.5) & (words < 3)], axis=1)
    auroc, within, decided = neuron_aurocs_with_words(values, positives, words, chunk_values=3000)
    assert decided.tolist() == [False, True, False]
    for neuron in range(4):
        for feature in (0, 2):
            u = pairs = 0.0
            for word in range(7):
                here = words == word
                y = positives[here, feature]
                if y.all() or not y.any():
                    continue
                n_pairs = y.sum() * (~y).sum()
                u += roc_auc_score(y, values[here, neuron]) * n_pairs
                pairs += n_pairs
            assert within[neuron, feature] == pytest.approx(u / pairs, abs=1e-12)
        assert np.isnan(within[neuron, 1])
        assert auroc[neuron, 0] == pytest.approx(roc_auc_score(positives[:, 0], values[:, neuron]))


def test_a_quote_state_unit_passes_and_a_unit_of_the_current_word_does_not():
    """On the built-in corpus, where title words only occur inside quotes, a unit that reads
    the current word alone can reach a high AUROC for in_quotes; only the state unit keeps its
    within-word AUROC."""
    text = synthetic.generate(seed=5, n_tokens=8000)
    tokens = text.tokens
    features = token_features(tokens)
    inside = features.values["in_quotes"]
    rng = np.random.default_rng(0)
    share_inside = {word: inside[[t == word for t in tokens]].mean() for word in set(tokens)}
    word_unit = np.array([share_inside[t] for t in tokens])  # the best a word-only unit can do
    state_unit = np.where(inside, 0.8, -0.3) + rng.normal(0, 0.2, len(tokens))
    states = np.stack([state_unit, word_unit], axis=1).astype(np.float32)
    concepts = analyse_concepts(make_capture({(1, "c"): states}, tokens), features)[(1, "c")]
    q = features.names.index("in_quotes")
    assert concepts.auroc[1, q] >= 0.9  # the word alone passes the plain AUROC ...
    assert concepts.within[1, q] == pytest.approx(0.5)  # ... but not the within-word one
    assert "in_quotes" not in dict(concepts.labels[1])
    assert concepts.within[0, q] > 0.95 and concepts.labels[0][0][0] == "in_quotes"


def planted_capture(seed=0, n_tokens=3000):
    """Random text with quotes and parentheses; neuron 3 of L1-h fires inside quotes, neuron 5
    of L1-c drops inside parentheses, the others are noise."""
    rng = np.random.default_rng(seed)
    tokens = list(rng.choice(["the", "cat", '"', "(", ")", "1998", "<eos>", "sat"], n_tokens,
                             p=[0.3, 0.2, 0.06, 0.05, 0.05, 0.1, 0.04, 0.2]))
    features = token_features(tokens)
    hidden = np.tanh(rng.normal(0, 0.6, (n_tokens, 12))).astype(np.float32)
    hidden[:, 3] = np.where(features.values["in_quotes"], 0.9, -0.2) + rng.normal(0, 0.03, n_tokens)
    hidden[:, 8] = 0.0  # a dead neuron
    cell = rng.normal(0, 2, (n_tokens, 10)).astype(np.float32)
    cell[:, 5] = np.where(features.values["in_parens"], -4.0, 1.0) + rng.normal(0, 0.5, n_tokens)
    return make_capture({(1, "h"): hidden, (1, "c"): cell}, tokens), features


def test_planted_neurons_get_their_labels_and_top_the_kl_ranking():
    capture, features = planted_capture()
    concepts = analyse_concepts(capture, features)
    hidden, cell = concepts[(1, "h")], concepts[(1, "c")]
    assert hidden.label[3] == "in_quotes" and hidden.label_auroc[3] > 0.95
    assert cell.label[5] == "in_parens" and cell.label_auroc[5] < 0.05
    assert [n for n, labels in enumerate(hidden.labels) if "in_quotes" in dict(labels)] == [3]
    assert [n for n, labels in enumerate(cell.labels) if "in_parens" in dict(labels)] == [5]

    distributions = analyse_distributions(capture)
    assert distributions[(1, "h")].rank[3] == 1
    assert distributions[(1, "c")].rank[5] == 1
    assert distributions[(1, "h")].near_zero[8] and distributions[(1, "h")].rank[8] == 12

    frame = distributions.to_frame(concepts)
    row = frame[(frame["state"] == "h") & (frame["neuron"] == 3)].iloc[0]
    assert row["label"] == "in_quotes" and row["label_auroc"] == hidden.label_auroc[3]
    concept_frame = concepts.to_frame()
    assert len(concept_frame) == 22
    assert {f"auroc_{name}" for name in features.names} <= set(concept_frame.columns)
    assert {f"within_auroc_{name}" for name in features.names} <= set(concept_frame.columns)
    assert concept_frame.loc[3, "labels"].split()[0] == f"in_quotes:{hidden.label_auroc[3]:.3f}"


def test_the_concept_index_lists_the_planted_units_first():
    capture, features = planted_capture()
    index = analyse_concepts(capture, features).index()
    quotes = [e for e in index if e.feature == "in_quotes" and e.key == (1, "h") and e.high]
    parens = [e for e in index if e.feature == "in_parens" and e.key == (1, "c") and not e.high]
    assert quotes[0].neuron == 3 and quotes[0].labelled
    assert parens[0].neuron == 5 and parens[0].auroc < 0.05
    assert all(abs(e.auroc - 0.5) >= 0.1 for e in index)


def test_mismatched_features_and_bad_threshold_are_refused():
    capture, features = planted_capture(n_tokens=50)
    with pytest.raises(ValueError):
        analyse_concepts(capture, token_features(capture.tokens[:-1]))
    with pytest.raises(ReportgenError):
        analyse_concepts(capture, features, threshold=0.7)


def test_average_ranks_equal_scipy_rankdata():
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(0, 1, (4, 500)) * 3).astype(np.float32)  # many ties
    values[1] = rng.normal(0, 1, 500)  # none
    values[2] = 7.0  # all tied
    values[3, :10] = [-0.0, 0.0] * 5  # signed zeros are equal
    np.testing.assert_array_equal(average_ranks(values), rankdata(values, axis=1))


def test_neuron_with_nan_has_no_auroc():
    values = np.arange(20, dtype=np.float32).reshape(10, 2)
    values[4, 1] = np.nan
    auroc = neuron_aurocs(values, (np.arange(10) >= 5)[:, None])
    assert auroc[0, 0] == 1.0 and np.isnan(auroc[1, 0])
