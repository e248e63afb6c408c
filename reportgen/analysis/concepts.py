"""Concepts: how well each neuron's activation separates the tokens of each feature (DESIGN.md 3.4).

The AUROC of a neuron for a feature is the probability that a token with the feature gets a
higher activation than one without (ties count half), which is the Mann-Whitney U statistic
over n_pos * n_neg. It is computed from ranks: rank each neuron's activations over all positions
(ties get their average rank), sum the ranks of each feature's positives with one matrix
product, and subtract n_pos (n_pos + 1) / 2. Neurons are ranked a chunk at a time, so memory
stays at a few (T, chunk) arrays. A feature without positives or without negatives has no AUROC
(NaN).

**Within-word AUROC.** A unit that only reacts to the current word can score a high AUROC on a
feature that the word mostly decides: `.` is usually followed by `<eos>`, `=` only stands in
headings. Memory shows when the same word gets different values with and without the feature:
the within-word AUROC is the chance that, of two occurrences of the *same* word, one with the
feature and one without, the one with it gets the higher value. It is the U statistics of the
words that occur both with and without the feature, summed, over their summed pairs: an
average of each word's AUROC weighted by its n_pos * n_neg pairs. The same pass computes it,
ranking each neuron's values within each word. It is NaN when those words give fewer than
`MIN_WITHIN_PAIRS` pairs. A feature that no word has both with and without (the word classes,
or `in_heading` on a text whose heading words never occur elsewhere) is *decided by the word*
on this text: it has no within-word figure, and a unit's label for it says that the unit fires
on those words.

**Labels** follow the rule of `reportgen.analysis.labels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from reportgen.analysis.labels import (
    LABEL_THRESHOLD,
    WITHIN_THRESHOLD,
    WORD_SHARE,
    Label,
    check_word_share,
    label_neurons,
)
from reportgen.capture.core import Capture, StateKey, state_name
from reportgen.charts import concept_auroc_chart
from reportgen.errors import ReportgenError
from reportgen.inputs.features import TokenFeatures
from reportgen.progress import Progress, progress_enabled

MIN_WITHIN_PAIRS = 100  # fewer same-word pairs than this give no within-word figure
INDEX_UNITS = 1  # units per direction, layer and state in the concept index; each gets a page
# (two each gave a 2x650 model 196 pages beyond its top 80 by KL, a third of the report)
INDEX_MIN_DISTANCE = 0.2  # |AUROC - 0.5| below which a unit is not listed in the index at all
RANK_CHUNK_VALUES = 1 << 21  # activations ranked at once: 2M, about 100 MB of sort buffers


@dataclass(frozen=True)
class NeuronConcepts:
    """AUROC and within-word AUROC of every neuron of one layer and state for every feature,
    and each neuron's labels."""

    key: StateKey
    features: tuple[str, ...]
    auroc: np.ndarray  # (H, F) float64, NaN where a feature lacks positives or negatives
    within: np.ndarray  # (H, F) float64 within-word AUROC, NaN where it is undefined
    word_decided: np.ndarray  # (F,) bool: no word occurs both with and without the feature
    labels: list[tuple[Label, ...]]  # H tuples, strongest first, () for an unlabelled neuron

    @property
    def name(self) -> str:
        return state_name(self.key)

    @property
    def label(self) -> list[str]:
        """Each neuron's strongest label, "" for none."""
        return [labels[0][0] if labels else "" for labels in self.labels]

    @property
    def label_auroc(self) -> np.ndarray:
        """(H,) AUROC of each neuron's strongest label, NaN for none."""
        return np.array([labels[0][1] if labels else np.nan for labels in self.labels])

    def labels_text(self, neuron: int) -> str:
        """`in_quotes:0.962 in_parens:0.941`, strongest first, as in neurons.csv."""
        return " ".join(f"{feature}:{auroc:.3f}" for feature, auroc in self.labels[neuron])

    def to_frame(self) -> pd.DataFrame:
        """One row per neuron: layer, state, neuron, label, label_auroc, labels, then
        auroc_<feature> and within_auroc_<feature> for each feature."""
        layer, state = self.key
        frame = pd.DataFrame({
            "layer": layer,
            "state": state,
            "neuron": np.arange(len(self.labels)),
            "label": self.label,
            "label_auroc": self.label_auroc,
            "labels": [self.labels_text(n) for n in range(len(self.labels))],
        })
        columns = {f"auroc_{feature}": self.auroc[:, index]
                   for index, feature in enumerate(self.features)}
        columns.update({f"within_auroc_{feature}": self.within[:, index]
                        for index, feature in enumerate(self.features)})
        return pd.concat([frame, pd.DataFrame(columns)], axis=1)

    def chart(self, neuron: int, threshold: float = LABEL_THRESHOLD) -> alt.Chart:
        return concept_auroc_chart(self.features, self.auroc[neuron], self.within[neuron],
                                   self.name, neuron, threshold)


@dataclass(frozen=True)
class ConceptResult:
    """`NeuronConcepts` for every layer and state, in report order."""

    states: dict[StateKey, NeuronConcepts]
    features: tuple[str, ...]
    threshold: float
    within_threshold: float = WITHIN_THRESHOLD
    descriptions: dict[str, str] | None = None  # feature -> what it means, in words
    word_share: float = WORD_SHARE  # the most units a feature the word decides may label

    def __getitem__(self, key: StateKey) -> NeuronConcepts:
        return self.states[key]

    def to_frame(self) -> pd.DataFrame:
        return pd.concat([concepts.to_frame() for concepts in self.states.values()], ignore_index=True)

    def index(self, per_direction: int = INDEX_UNITS) -> list[IndexEntry]:
        """The concept index: for each feature, layer and state and direction, the units
        farthest from chance (up to `per_direction`, at least `INDEX_MIN_DISTANCE` away),
        features in order, then layer and state, then high before low, strongest first."""
        entries = []
        for f, feature in enumerate(self.features):
            for key, concepts in self.states.items():
                labelled = {n for n, labels in enumerate(concepts.labels)
                            if feature in dict(labels)}
                for high in (True, False):
                    for neuron in best_units(concepts.auroc[:, f], high, per_direction):
                        entries.append(IndexEntry(
                            feature, key, int(neuron), high, float(concepts.auroc[neuron, f]),
                            float(concepts.within[neuron, f]), bool(concepts.word_decided[f]),
                            int(neuron) in labelled))
        return entries


@dataclass(frozen=True)
class IndexEntry:
    """One unit of the concept index: a unit that tracks `feature`, high or low on it."""

    feature: str
    key: StateKey
    neuron: int
    high: bool
    auroc: float
    within: float  # within-word AUROC, NaN where undefined
    word_decided: bool
    labelled: bool


def best_units(auroc: np.ndarray, high: bool, count: int) -> list[int]:
    """(H,) AUROCs of one feature -> up to `count` units farthest from 0.5 on one side,
    strongest first, each at least `INDEX_MIN_DISTANCE` from chance."""
    distance = np.nan_to_num(auroc - 0.5 if high else 0.5 - auroc, nan=-1.0)  # (H,)
    order = np.argsort(-distance, kind="stable")[:count]
    return [int(n) for n in order if distance[n] >= INDEX_MIN_DISTANCE]


def analyse_concepts(
    capture: Capture,
    features: TokenFeatures,
    threshold: float = LABEL_THRESHOLD,
    chunk_values: int = RANK_CHUNK_VALUES,
    progress: bool | None = False,
    within_threshold: float = WITHIN_THRESHOLD,
    word_share: float = WORD_SHARE,
) -> ConceptResult:
    """AUROC and within-word AUROC of every neuron of every layer and state for every feature,
    and their labels.

    `progress` None shows the neurons done on stderr when it is a terminal.
    """
    for name, value in (("", threshold), ("within-word ", within_threshold)):
        if not 0 < value <= 0.5:
            raise ReportgenError(
                f"the {name}concept label threshold must be in (0, 0.5], got {value!r}")
    check_word_share(word_share)
    if capture.n_tokens == 0:
        raise ReportgenError("the capture holds no tokens; give a text with at least one token")
    if features.n_tokens != capture.n_tokens:
        raise ValueError(f"features cover {features.n_tokens} tokens but the capture has {capture.n_tokens}")
    positives = features.matrix()  # (T, F) bool
    words = word_ids(capture.tokens)
    names = tuple(features.names)
    states = {}
    total = sum(capture.states[key].shape[1] for key in capture.keys)
    with Progress("concepts", total, "neurons", **progress_enabled(progress)) as bar:
        for key in capture.keys:
            auroc, within, decided = neuron_aurocs_with_words(
                capture.states[key], positives, words, chunk_values, bar)
            labels = label_neurons(auroc, within, decided, names, threshold, within_threshold,
                                   word_share)
            states[key] = NeuronConcepts(key, names, auroc, within, decided, labels)
    return ConceptResult(states=states, features=names, threshold=threshold,
                         within_threshold=within_threshold, descriptions=dict(features.descriptions),
                         word_share=word_share)


def word_ids(tokens: list[str]) -> np.ndarray:
    """(T,) int64: each token's index among the text's distinct words."""
    _, inverse = np.unique(np.asarray(tokens, dtype=object).astype(str), return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


@dataclass(frozen=True)
class WordPairs:
    """What the within-word AUROC needs of each feature, from the tokens alone."""

    mask: np.ndarray  # (F, T) float64: positives of words that occur with and without f
    correction: np.ndarray  # (F,) sum over those words of n_pos (n_pos + 1) / 2
    pairs: np.ndarray  # (F,) sum over those words of n_pos * n_neg
    word_decided: np.ndarray  # (F,) bool: no word occurs both with and without f
    groups: np.ndarray  # (T,) int16 or int32: a group per word mixed for some feature, else 0


def word_pairs(positives: np.ndarray, words: np.ndarray) -> WordPairs:
    """positives (T, F) bool, words (T,) int64 -> the per-feature sums of the within-word U."""
    n_words = int(words.max()) + 1 if len(words) else 0
    count = np.bincount(words, minlength=n_words).astype(np.float64)  # (W,)
    masks, corrections, pairs, decided = [], [], [], []
    mixed_any = np.zeros(n_words, dtype=bool)  # (W,)
    for column in positives.T:
        pos = np.bincount(words, weights=column, minlength=n_words)  # (W,)
        neg = count - pos
        mixed = (pos > 0) & (neg > 0)  # (W,)
        mixed_any |= mixed
        masks.append(column & mixed[words])
        corrections.append(float((pos * (pos + 1) / 2)[mixed].sum()))
        pairs.append(float((pos * neg)[mixed].sum()))
        decided.append(not mixed.any())
    return WordPairs(
        mask=np.array(masks, dtype=np.float64).reshape(len(masks), len(words)),
        correction=np.array(corrections), pairs=np.array(pairs),
        word_decided=np.array(decided, dtype=bool), groups=rank_groups(words, mixed_any),
    )


def rank_groups(words: np.ndarray, mixed: np.ndarray) -> np.ndarray:
    """(T,) the group each position is ranked in: its own for a word that occurs both with and
    without some feature, one shared group for all other words, whose within-word ranks no
    feature reads. Few groups fit int16, which NumPy sorts stably by radix: 16 times faster
    than int64 here, and the stable sort by group is most of the within-word pass."""
    remap = np.zeros(len(mixed), dtype=np.int64)  # (W,)
    remap[mixed] = np.arange(1, int(mixed.sum()) + 1)
    dtype = np.int16 if mixed.sum() < np.iinfo(np.int16).max else np.int32
    return remap[words].astype(dtype)


def neuron_aurocs(
    values: np.ndarray,  # (T, H) float32 or float16
    positives: np.ndarray,  # (T, F) bool
    chunk_values: int = RANK_CHUNK_VALUES,
    bar: Progress | None = None,
) -> np.ndarray:
    """(H, F) float64 AUROC of each neuron's activation for each feature, neurons in chunks."""
    return neuron_aurocs_with_words(values, positives, None, chunk_values, bar)[0]


def neuron_aurocs_with_words(
    values: np.ndarray,  # (T, H) float32 or float16
    positives: np.ndarray,  # (T, F) bool
    words: np.ndarray | None,  # (T,) int64 word ids; None skips the within-word figures
    chunk_values: int = RANK_CHUNK_VALUES,
    bar: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, F) AUROC, (H, F) within-word AUROC and (F,) word-decided flags; `bar` is advanced
    by the neurons of each chunk."""
    if words is None:
        words = np.zeros(len(values), dtype=np.int64)
        skip_within = True
    else:
        skip_within = False
    n_tokens, n_neurons = values.shape
    n_pos = positives.sum(axis=0).astype(np.float64)  # (F,)
    pairs = n_pos * (n_tokens - n_pos)
    indicator = positives.T.astype(np.float64)  # (F, T)
    same_word = word_pairs(positives, words)
    enough = (same_word.pairs >= MIN_WITHIN_PAIRS) & (not skip_within)  # (F,)
    neurons_per_chunk = max(1, chunk_values // max(n_tokens, 1))
    auroc = np.empty((n_neurons, positives.shape[1]))
    within = np.full_like(auroc, np.nan)
    for start in range(0, n_neurons, neurons_per_chunk):
        columns = values[:, start : start + neurons_per_chunk]
        chunk = np.ascontiguousarray(columns.T, dtype=np.float32)  # (h, T)
        ranks, word_ranks = overall_and_word_ranks(chunk,
                                                   same_word.groups if enough.any() else None)
        u = ranks @ indicator.T - n_pos * (n_pos + 1) / 2  # (h, F)
        chunk_auroc = np.divide(u, pairs, out=np.full(u.shape, np.nan), where=pairs > 0)
        broken = np.isnan(chunk).any(axis=1)  # (h,)
        chunk_auroc[broken] = np.nan
        auroc[start : start + len(chunk)] = chunk_auroc
        if word_ranks is not None:
            u_within = word_ranks @ same_word.mask.T - same_word.correction  # (h, F)
            chunk_within = np.divide(u_within, same_word.pairs,
                                     out=np.full(u_within.shape, np.nan), where=enough)
            chunk_within[broken] = np.nan
            within[start : start + len(chunk)] = chunk_within
        if bar is not None:
            bar.advance(len(chunk))
    return auroc, within, same_word.word_decided


def average_ranks(values: np.ndarray) -> np.ndarray:
    """(h, T) float64 rank of each value within its row, from 1, ties given their mean rank.

    The same as `scipy.stats.rankdata(values, axis=1)`, about twice as fast: one argsort, then
    each run of equal sorted values gets the mean of its first and last position.
    """
    return overall_and_word_ranks(values, None)[0]


def overall_and_word_ranks(
    values: np.ndarray,  # (h, T)
    words: np.ndarray | None,  # (T,) int word (or group) ids, or None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Average ranks of each row over all positions and, given `words`, among the positions of
    the same word: (h, T) float64 each, from 1, ties given their mean rank.

    One argsort by value serves both: a stable argsort of the word ids in that order groups the
    positions by word and keeps them sorted by value inside each word.
    """
    order = np.argsort(values, axis=1)  # (h, T)
    ordered = np.take_along_axis(values, order, axis=1)
    ranks = np.empty(values.shape)
    np.put_along_axis(ranks, order, tied_ranks(ordered, None), axis=1)
    if words is None:
        return ranks, None
    by_word = np.argsort(words[order], axis=1, kind="stable")  # (h, T)
    order = np.take_along_axis(order, by_word, axis=1)
    word_of = words[order]  # (h, T) word of each sorted value
    word_ranks = np.empty(values.shape)
    np.put_along_axis(word_ranks, order,
                      tied_ranks(np.take_along_axis(values, order, axis=1), word_of), axis=1)
    return ranks, word_ranks


def tied_ranks(ordered: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """(h, T) ranks from 1 of values sorted within each row (and within each group, when
    `groups` (h, T) gives each sorted value's group): equal values share their mean rank."""
    n = ordered.shape[1]
    positions = np.arange(n)
    starts_run = np.empty(ordered.shape, dtype=bool)
    starts_run[:, 0] = True
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts_run[:, 1:])
    group_start = np.zeros(ordered.shape, dtype=np.int64)
    if groups is not None:
        starts_group = np.empty(ordered.shape, dtype=bool)
        starts_group[:, 0] = True
        np.not_equal(groups[:, 1:], groups[:, :-1], out=starts_group[:, 1:])
        starts_run |= starts_group
        group_start = np.maximum.accumulate(np.where(starts_group, positions, 0), axis=1)
    ends_run = np.empty_like(starts_run)
    ends_run[:, -1] = True
    ends_run[:, :-1] = starts_run[:, 1:]
    first = np.maximum.accumulate(np.where(starts_run, positions, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends_run, positions, n - 1)[:, ::-1], axis=1)[:, ::-1]
    return (first + last) / 2 + 1 - group_start
