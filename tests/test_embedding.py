"""Word-representation analysis: sampling, t-SNE, both linkages, tables, exports and chart."""

from collections import Counter

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.metrics import adjusted_rand_score

from reportgen.analysis.clustering import (
    cluster_tables,
    number_by_size,
    single_linkage_labels,
    single_linkage_tree,
    ward_labels,
)
from reportgen.analysis.embedding import (
    EmbeddingOptions,
    embed,
    sample_positions,
    token_context,
    tsne_2d,
)
from reportgen.capture.core import Capture
from reportgen.errors import ReportgenError


def gaussian_blobs(n_blobs: int, per_blob: int, seed: int, spread: float = 0.3):
    """(n_blobs * per_blob, 2) points around centres 20 apart, and each point's blob."""
    rng = np.random.default_rng(seed)
    centres = rng.permutation(n_blobs * 4)[:n_blobs, None] * np.array([20.0, 0.0])
    centres[:, 1] = rng.uniform(-40, 40, size=n_blobs)
    truth = np.repeat(np.arange(n_blobs), per_blob)
    return centres[truth] + rng.normal(scale=spread, size=(len(truth), 2)), truth


def synthetic_capture(n_tokens: int = 900, hidden: int = 24, seed: int = 0) -> Capture:
    """A capture whose L1-h vectors are drawn around one mean per word: the words are classes."""
    rng = np.random.default_rng(seed)
    vocabulary = ["alpha", "beta", "gamma"]
    ids = rng.integers(0, len(vocabulary), size=n_tokens)
    means = rng.normal(scale=4.0, size=(len(vocabulary), hidden))
    h = (means[ids] + rng.normal(size=(n_tokens, hidden))).astype(np.float32)
    return Capture(
        token_ids=ids.astype(np.int64),
        tokens=[vocabulary[i] for i in ids],
        states={(1, "h"): h, (1, "c"): np.tanh(h)},
        log_prob_next=np.full(n_tokens, -1.0, dtype=np.float32),
        top_ids=np.zeros((n_tokens, 5), dtype=np.int64),
        top_log_probs=np.zeros((n_tokens, 5), dtype=np.float32),
        vocabulary=vocabulary,
    )


@pytest.fixture(scope="module")
def embedded():
    capture = synthetic_capture()
    options = EmbeddingOptions(max_points=400, seed=3, n_clusters=3)
    return capture, embed(capture, 1, "h", options, n_jobs=1)


@pytest.mark.parametrize("n_blobs", [2, 5])
def test_separated_blobs_come_back_under_both_linkages(n_blobs):
    points, truth = gaussian_blobs(n_blobs, per_blob=80, seed=n_blobs)
    assert adjusted_rand_score(truth, single_linkage_labels(points, n_blobs)) == 1.0
    assert adjusted_rand_score(truth, ward_labels(points, n_blobs)) == 1.0
    assert adjusted_rand_score(truth, single_linkage_labels(points, distance_threshold=5.0)) == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_single_linkage_merge_heights_match_scipy(seed):
    points = np.random.default_rng(seed).uniform(size=(400, 2))
    ours = single_linkage_tree(points)
    theirs = linkage(points, method="single")
    np.testing.assert_allclose(np.sort(ours[:, 2]), theirs[:, 2], rtol=1e-12)
    np.testing.assert_array_equal(ours[:, 3], theirs[:, 3])


@pytest.mark.parametrize("n_clusters", [1, 2, 7, 40])
def test_single_linkage_matches_scipy_maxclust(n_clusters):
    points = np.random.default_rng(n_clusters).normal(size=(500, 2))
    expected = fcluster(linkage(points, method="single"), n_clusters, criterion="maxclust")
    ours = single_linkage_labels(points, n_clusters)
    assert adjusted_rand_score(expected, ours) == 1.0
    assert len(np.unique(ours)) == n_clusters


@pytest.mark.parametrize("quantile", [0.5, 0.9, 0.99])
def test_single_linkage_matches_scipy_distance_threshold(quantile):
    points = np.random.default_rng(7).normal(size=(500, 2))
    tree = linkage(points, method="single")
    threshold = float(np.quantile(tree[:, 2], quantile))
    expected = fcluster(tree, threshold, criterion="distance")
    ours = single_linkage_labels(points, distance_threshold=threshold)
    assert adjusted_rand_score(expected, ours) == 1.0


def test_single_linkage_handles_duplicates_and_collinear_points():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(60, 2))
    with_copies = np.concatenate([base, base[:20], base[:5]])
    t = rng.uniform(size=200)
    on_a_line = np.column_stack([t, 3 * t - 1])
    for points in (with_copies, on_a_line):
        expected = fcluster(linkage(points, method="single"), 6, criterion="maxclust")
        assert adjusted_rand_score(expected, single_linkage_labels(points, 6)) == 1.0
    copies_of_one = np.zeros((5, 2))
    assert single_linkage_labels(copies_of_one, 3).tolist() == [0] * 5
    assert sorted(single_linkage_labels(np.array([[0.0, 0.0], [1.0, 1.0]]), 2)) == [0, 1]
    assert single_linkage_labels(np.zeros((1, 2)), 1).tolist() == [0]


def test_min_cluster_size_keeps_stray_points_with_their_cluster():
    points, truth = gaussian_blobs(2, per_blob=100, seed=11)
    far = np.array([[500.0, 500.0], [-500.0, 1000.0]])  # two stray points, far from all
    with_strays = np.concatenate([points, far])
    plain = single_linkage_labels(with_strays, 3, min_cluster_size=1)
    assert sorted(np.bincount(plain)) == [1, 1, 200]  # classical cuts go to the strays
    pruned = single_linkage_labels(with_strays, 2, min_cluster_size=10)
    assert adjusted_rand_score(truth, pruned[: len(truth)]) == 1.0
    assert sorted(np.bincount(pruned)) in ([100, 102], [101, 101])


def test_clusters_are_numbered_by_size_ties_by_first_member():
    labels = np.array([5, 5, 3, 3, 3, 9, 9, 1])
    numbered = number_by_size(labels)
    assert adjusted_rand_score(labels, numbered) == 1.0
    sizes = np.bincount(numbered)
    assert (np.diff(sizes) <= 0).all()
    assert numbered[2] == 0 and numbered[0] == 1 and numbered[5] == 2 and numbered[7] == 3
    points, _ = gaussian_blobs(4, per_blob=30, seed=2)
    points = np.concatenate([points, points[:40] + 0.01])  # make the blobs' sizes differ
    for labels in (single_linkage_labels(points, 4), ward_labels(points, 4)):
        assert (np.diff(np.bincount(labels)) <= 0).all()


def test_sampling_is_deterministic_sorted_and_respects_exclude():
    tokens = ["<eos>" if t % 7 == 0 else f"w{t % 13}" for t in range(1000)]
    first = sample_positions(tokens, 200, seed=5, exclude=("<eos>",))
    assert np.array_equal(first, sample_positions(tokens, 200, seed=5, exclude=("<eos>",)))
    assert not np.array_equal(first, sample_positions(tokens, 200, seed=6, exclude=("<eos>",)))
    assert len(first) == 200 and len(np.unique(first)) == 200
    assert (np.diff(first) > 0).all()
    assert all(tokens[p] != "<eos>" for p in first)
    everything_left = sample_positions(tokens, 5000, seed=5, exclude=("<eos>",))
    assert everything_left.tolist() == [t for t in range(1000) if t % 7 != 0]
    with pytest.raises(ReportgenError):
        sample_positions(["<eos>"] * 3, 10, seed=0, exclude=("<eos>",))


def test_tsne_is_deterministic_for_a_seed():
    points, _ = gaussian_blobs(3, per_blob=60, seed=1)
    vectors = np.concatenate([points, np.zeros((len(points), 8))], axis=1)
    first = tsne_2d(vectors, perplexity=15, seed=2, pca_dims=4, n_jobs=1)
    assert first.shape == (180, 2) and first.dtype == np.float32
    assert np.array_equal(first, tsne_2d(vectors, perplexity=15, seed=2, pca_dims=4, n_jobs=1))


def test_identical_vectors_map_to_one_point():
    xy = tsne_2d(np.ones((20, 5), dtype=np.float16))
    assert np.array_equal(xy, np.zeros((20, 2), dtype=np.float32))
    assert single_linkage_labels(xy, 4).tolist() == [0] * 20


def test_cluster_tables_count_words_like_counter():
    rng = np.random.default_rng(8)
    tokens = [f"w{i}" for i in rng.integers(0, 12, size=300)]
    labels = number_by_size(rng.integers(0, 5, size=300))
    rows = cluster_tables(labels, tokens)
    assert [row.cluster for row in rows] == list(range(5))
    for row in rows:
        expected = Counter(t for t, label in zip(tokens, labels) if label == row.cluster)
        assert dict(row.words) == expected
        assert row.size == sum(expected.values())
        assert [(-c, w) for w, c in row.words] == sorted((-c, w) for w, c in row.words)
        assert row.top_words(3) == row.words[:3]


def test_embed_recovers_planted_classes(embedded):
    capture, result = embedded
    assert result.xy.shape == (400, 2)
    assert result.tokens == [capture.tokens[p] for p in result.positions]
    for name in ("single", "ward"):
        purity = sum(row.words[0][1] for row in result.tables[name]) / result.n_points
        assert purity >= 0.98, (name, purity)
    assert "[[" + result.tokens[0] + "]]" in result.contexts[0]


def test_embed_is_deterministic_for_a_seed(embedded):
    capture, result = embedded
    again = embed(capture, 1, "h", result.options)
    assert np.array_equal(result.positions, again.positions)
    assert np.array_equal(result.xy, again.xy)
    for name in ("single", "ward"):
        assert np.array_equal(result.labels[name], again.labels[name])


def test_exports_have_the_design_columns(embedded):
    _, result = embedded
    points = result.points_frame()
    cuts = [k for k in result.options.all_cuts if k]
    assert list(points.columns) == [
        "layer", "state", "position", "token", "x", "y", "cluster_single", "cluster_ward",
        "cluster_ward_pca",
        *[f"cluster_{linkage}_k{k}" for linkage in ("single", "ward", "ward_pca") for k in cuts],
    ]
    assert len(points) == result.n_points
    assert (points["layer"] == 1).all() and (points["state"] == "h").all()
    assert points["token"].tolist() == result.tokens
    default = result.options.default_cut
    assert (points["cluster_ward"] == points[f"cluster_ward_k{default}"]).all()
    clusters = result.clusters_frame()
    assert list(clusters.columns) == ["layer", "state", "linkage", "cluster", "size", "words",
                                      "class", "class_share", "top_class", "top_class_share"]
    for row in clusters.itertuples():
        counts = [int(item.rpartition(":")[2]) for item in row.words.split(" ")]
        assert sum(counts) == row.size
        assert (points[f"cluster_{row.linkage}"] == row.cluster).sum() == row.size
    every = result.clusters_frame(every_cut=True)
    assert list(every.columns)[0] == "n_clusters" and set(every["n_clusters"]) == set(cuts)
    for (name, k), group in every.groupby(["linkage", "n_clusters"]):
        assert group["size"].sum() == result.n_points
        assert set(group["cluster"]) == set(points[f"cluster_{name}_k{k}"])


def test_each_cluster_is_named_by_its_most_common_class():
    labels = np.array([0, 0, 0, 1, 1, 2])
    tokens = ["he", "she", "the", "is", "was", "dog"]
    classes = {"pronoun": np.array([1, 1, 0, 0, 0, 0], bool),
               "be": np.array([0, 0, 0, 1, 1, 0], bool)}
    rows = cluster_tables(labels, tokens, classes)
    assert [(row.word_class, row.class_share) for row in rows] == [
        ("pronoun", pytest.approx(2 / 3)), ("be", 1.0), ("", 0.0)]


def test_clusters_csv_names_a_class_only_from_half_of_the_cluster():
    """A cluster of nouns with a few pronouns is not "pronoun" in clusters.csv, as it is not on
    the page; top_class keeps the plurality. Shares recomputed from the tokens."""
    from reportgen.analysis.embedding import EmbeddingOptions, EmbeddingResult

    tokens = ["cat"] * 81 + ["he"] + ["dog"] * 30 + ["she"] * 20 + ["is"] * 10
    labels = np.array([0] * 82 + [1] * 50 + [2] * 10)  # 0: 1 pronoun of 82; 1: 20 of 50; 2: be
    classes = {"pronoun": np.isin(tokens, ["he", "she"]), "be": np.isin(tokens, ["is"])}
    rows = cluster_tables(labels, tokens, classes)
    options = EmbeddingOptions(n_clusters=3)
    n = len(tokens)
    result = EmbeddingResult(
        key=(1, "h"), positions=np.arange(n), tokens=tokens, contexts=tokens,
        xy=np.zeros((n, 2), np.float32), pca=np.zeros((n, 2), np.float32), classes=classes,
        cut_labels={(name, options.default_cut): labels for name in ("single", "ward", "ward_pca")},
        cut_tables={(name, options.default_cut): rows for name in ("single", "ward", "ward_pca")},
        options=options)
    frame = result.clusters_frame()
    single = frame[frame["linkage"] == "single"].set_index("cluster")
    assert list(single["class"]) == ["", "", "be"]
    assert single["class_share"].isna().tolist() == [True, True, False]
    assert single.loc[2, "class_share"] == 1.0
    assert list(single["top_class"]) == ["pronoun", "pronoun", "be"]
    np.testing.assert_allclose(single["top_class_share"], [1 / 82, 20 / 50, 1.0], atol=1e-6)


def test_cuts_of_one_tree_are_nested_and_ward_pca_clusters_the_states(embedded):
    _, result = embedded
    cuts = [k for k in result.options.all_cuts if k]
    for name in ("ward", "ward_pca"):
        for coarse, fine in zip(cuts, cuts[1:]):
            pairs = set(zip(result.cut_labels[(name, fine)].tolist(),
                            result.cut_labels[(name, coarse)].tolist()))
            assert len({f for f, _ in pairs}) == len(pairs)  # each fine cluster in one coarse
    reference = ward_labels(result.pca, n_clusters=cuts[0])
    assert np.array_equal(result.cut_labels[("ward_pca", cuts[0])], reference)


def test_recluster_changes_granularity_only(embedded):
    _, result = embedded
    finer = result.recluster(n_clusters=6)
    assert np.array_equal(finer.xy, result.xy)
    assert len(np.unique(finer.labels["ward"])) == 6
    assert len(finer.tables["ward"]) == 6


def test_chart_spec_colours_by_cluster_with_token_tooltip(embedded):
    _, result = embedded
    spec = result.chart("single").to_dict()
    assert spec["mark"]["type"] == "circle"
    assert spec["encoding"]["color"]["field"] == "cluster"
    assert {t["field"] for t in spec["encoding"]["tooltip"]} >= {"token", "context"}
    values = spec["data"]["values"]
    assert len(values) == result.n_points
    assert [v["cluster"] for v in values] == result.labels["single"].tolist()


def test_token_context_marks_the_token():
    tokens = "a b c d e f g h i j".split()
    assert token_context(tokens, 5, width=2) == "d e [[f]] g h"
    assert token_context(tokens, 0, width=2) == "[[a]] b c"


def test_user_errors_say_what_is_wrong(embedded):
    capture, _ = embedded
    with pytest.raises(ReportgenError, match="L2-h"):
        embed(capture, 2, "h")
    with pytest.raises(ReportgenError):
        EmbeddingOptions(n_clusters=5, distance_threshold=1.0)
    with pytest.raises(ReportgenError):
        EmbeddingOptions(n_clusters=None)
