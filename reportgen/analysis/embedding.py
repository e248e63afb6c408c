"""Word representations: sample positions, map one state's vectors to 2-D, cluster the map.

The stages are public so that a notebook can run any one of them alone:

    sample_positions -> tsne_2d -> single_linkage_labels / ward_labels -> cluster_tables

and `embed(capture, layer, state)` chains them into an `EmbeddingResult`, which gives the
`points.csv` and `clusters.csv` rows and its own chart.

Why these methods (DESIGN.md 3.3, measured on 2 cores):
- openTSNE's FFT gradient beats its Barnes-Hut from about 15k points up: on a 2x650 model's
  layer-1 states after PCA to 50, Barnes-Hut took 9-11 s for 5k points, 25 s for 10k and 56 s
  for 20k, FFT 22 s, 32 s and 47 s. Both beat scikit-learn's TSNE at 20k (146 s). PCA to 50
  loses nothing in kNN accuracy. The gradient is chosen by size (see FFT_MIN_POINTS).
- Single linkage is read off the minimum spanning tree. In the plane the Euclidean MST is a
  subgraph of the Delaunay triangulation, so the MST of the triangulation's O(N) edges is exact
  and costs about 1 s for 100k points, where scikit-learn needs all O(N^2) pairs.
- Ward uses `fastcluster.linkage_vector`, which needs O(N) memory instead of a distance matrix.

On t-SNE maps of real text, plain single linkage can spend its cuts on stray points between
the islands and leave one giant cluster (DESIGN.md 3.3). `min_cluster_size` fixes that without
leaving single linkage: it cuts the same tree, but only where both sides keep at least that
many points; the strays stay with the cluster they hang off. With `min_cluster_size=1` the cut
is the classical one, identical to scipy's `fcluster` on `linkage(method="single")`.
"""

from __future__ import annotations

import heapq
import os
from collections import Counter
from dataclasses import dataclass, field, replace

import altair as alt
import fastcluster
import numpy as np
import openTSNE
import pandas as pd
from scipy.cluster.hierarchy import fcluster
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import Delaunay
from sklearn.decomposition import PCA

from reportgen.capture import Capture, StateKey, state_name
from reportgen.charts import embedding_chart
from reportgen.errors import ReportgenError
from reportgen.progress import Progress, progress_enabled

LINKAGES = ("single", "ward")
CONTEXT_TOKENS = 4  # tokens shown on each side of a point's token in its tooltip
TOP_WORDS = 10  # words shown per cluster in tables; the export keeps all of them
MIN_TSNE_POINTS = 3  # openTSNE's PCA initialisation needs at least this many points
# openTSNE's FFT gradient has a fixed cost per iteration that dominates on small maps. Measured
# with one thread: 1k points take 4.9 s with Barnes-Hut and 11.9 s with FFT; 5k points 32 s and
# 27 s (machine under load). Below this size Barnes-Hut is used.
FFT_MIN_POINTS = 15_000  # Barnes-Hut below, where it is faster
PROGRESS_EVERY_ITERATIONS = 50  # t-SNE iterations between progress updates
COLLINEAR_TOLERANCE = 1e-10  # smaller-to-larger singular value ratio treated as a straight line


def available_cores() -> int:
    """Cores this process may run on: the affinity mask where the OS has one, else cpu_count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class EmbeddingOptions:
    """How to sample, map and cluster one layer and state.

    max_points: 5000 keeps t-SNE near 10 s per layer and state on 2 cores and the scatter
        plot light enough for SVG; more points cost time roughly linearly (20k: about 47 s).
    exclude: tokens left out of the sample. Nothing by default, so the sample is uniform over
        the text and every row of points.csv matches tokens.csv; pass ("<eos>",) to drop line ends.
    pca_dims: PCA before t-SNE to this many dimensions; 0 or None maps the raw vectors.
    n_clusters / distance_threshold: exactly one is set. The threshold is in the linkage's own
        height units (Euclidean map distance for single, Ward's distance for ward).
    min_cluster_size: single linkage only cuts where both sides keep this many points (see the
        module docstring); 1 gives the classical cut.
    n_jobs: threads for t-SNE, all the cores this process may use by default.
    """

    max_points: int = 5000
    seed: int = 0
    exclude: tuple[str, ...] = ()
    pca_dims: int | None = 50
    perplexity: float = 30.0
    n_clusters: int | None = 20
    distance_threshold: float | None = None
    min_cluster_size: int = 10
    n_jobs: int = field(default_factory=available_cores)

    def __post_init__(self) -> None:
        if self.max_points < 1:
            raise ReportgenError(f"--max-points must be at least 1, got {self.max_points}")
        if self.perplexity <= 0:
            raise ReportgenError(f"--perplexity must be positive, got {self.perplexity}")
        if self.min_cluster_size < 1:
            raise ReportgenError(
                f"--min-cluster-size must be at least 1, got {self.min_cluster_size}"
            )
        check_cut(self.n_clusters, self.distance_threshold)


def check_cut(n_clusters: int | None, distance_threshold: float | None) -> None:
    """Exactly one way to cut a tree: a number of clusters (>= 1) or a threshold (>= 0)."""
    if (n_clusters is None) == (distance_threshold is None):
        raise ReportgenError(
            "give either a number of clusters or a distance threshold, not both or neither"
        )
    if n_clusters is not None and n_clusters < 1:
        raise ReportgenError(f"the number of clusters must be at least 1, got {n_clusters}")
    if distance_threshold is not None and not distance_threshold >= 0:
        raise ReportgenError(f"the distance threshold must be >= 0, got {distance_threshold}")


@dataclass(frozen=True)
class ClusterRow:
    """One cluster of one linkage: its number (0 the largest), size and words by count."""

    cluster: int
    size: int
    words: tuple[tuple[str, int], ...]  # every word with its count, most frequent first

    def top_words(self, limit: int = TOP_WORDS) -> tuple[tuple[str, int], ...]:
        """The words a table shows: the `limit` most frequent, with their counts."""
        return self.words[:limit]

    def words_text(self, limit: int | None = None) -> str:
        """`word:count` joined by spaces, as in clusters.csv (split each item on its last colon)."""
        return " ".join(f"{word}:{count}" for word, count in self.words[:limit])


@dataclass
class EmbeddingResult:
    """The sampled points of one layer and state, their t-SNE map and their clusters."""

    key: StateKey
    positions: np.ndarray  # (N,) int64, sorted positions in the text
    tokens: list[str]  # N token strings, untrusted corpus text
    contexts: list[str]  # N strings: the tokens around each point, the token as [[token]]
    xy: np.ndarray  # (N, 2) float32 t-SNE coordinates
    labels: dict[str, np.ndarray]  # linkage -> (N,) int64, 0 the largest cluster
    tables: dict[str, list[ClusterRow]]  # linkage -> rows ordered by cluster number
    options: EmbeddingOptions

    @property
    def n_points(self) -> int:
        return len(self.tokens)

    def points_frame(self) -> pd.DataFrame:
        """points.csv rows: layer, state, position, token, x, y, cluster_single, cluster_ward."""
        layer, state = self.key
        return pd.DataFrame(
            {
                "layer": np.full(self.n_points, layer, dtype=np.int64),
                "state": [state] * self.n_points,
                "position": self.positions,
                "token": self.tokens,
                "x": self.xy[:, 0],
                "y": self.xy[:, 1],
                **{f"cluster_{name}": self.labels[name] for name in LINKAGES},
            }
        )

    def clusters_frame(self) -> pd.DataFrame:
        """clusters.csv rows: layer, state, linkage, cluster, size, words (all of them)."""
        layer, state = self.key
        rows = [
            (layer, state, name, row.cluster, row.size, row.words_text())
            for name in LINKAGES
            for row in self.tables[name]
        ]
        return pd.DataFrame(
            rows, columns=["layer", "state", "linkage", "cluster", "size", "words"]
        )

    def recluster(
        self, n_clusters: int | None = None, distance_threshold: float | None = None
    ) -> EmbeddingResult:
        """The same map cut at another granularity, without running t-SNE again."""
        options = replace(
            self.options, n_clusters=n_clusters, distance_threshold=distance_threshold
        )
        labels = cluster_labels(self.xy, options)
        return replace(
            self,
            labels=labels,
            tables={name: cluster_tables(labels[name], self.tokens) for name in LINKAGES},
            options=options,
        )

    def chart(self, linkage: str = "ward") -> alt.Chart:
        return embedding_chart(self, linkage)


def embed(
    capture: Capture, layer: int, state: str, options: EmbeddingOptions | None = None,
    progress: bool | None = False,
) -> EmbeddingResult:
    """Sample positions, map their `(layer, state)` vectors with t-SNE and cluster the map.

    `progress` None shows the t-SNE iterations on stderr when it is a terminal.
    """
    options = options or EmbeddingOptions()
    key = (layer, state)
    if key not in capture.states:
        available = ", ".join(state_name(k) for k in capture.keys)
        raise ReportgenError(f"no state {state_name(key)} in this capture; it has {available}")
    positions = sample_positions(
        capture.tokens, options.max_points, options.seed, options.exclude
    )
    vectors = np.asarray(capture.states[key][positions], dtype=np.float32)  # (N, H)
    xy = tsne_2d(vectors, options.perplexity, options.seed, options.pca_dims, options.n_jobs,
                 progress, f"t-SNE {state_name(key)}")
    tokens = [capture.tokens[p] for p in positions]
    labels = cluster_labels(xy, options)
    return EmbeddingResult(
        key=key,
        positions=positions,
        tokens=tokens,
        contexts=[token_context(capture.tokens, int(p)) for p in positions],
        xy=xy,
        labels=labels,
        tables={name: cluster_tables(labels[name], tokens) for name in LINKAGES},
        options=options,
    )


def sample_positions(
    tokens: list[str], max_points: int, seed: int, exclude: tuple[str, ...] = ()
) -> np.ndarray:
    """Up to `max_points` positions drawn uniformly without replacement, sorted: (N,) int64.

    Only positions whose token is not in `exclude` are eligible. When there are no more
    eligible positions than `max_points`, all of them are returned.
    """
    excluded = set(exclude)
    eligible = np.array(
        [t for t, token in enumerate(tokens) if token not in excluded], dtype=np.int64
    )  # (E,)
    if eligible.size == 0:
        raise ReportgenError(
            f"every one of the {len(tokens)} tokens is excluded; shorten --exclude"
        )
    if eligible.size <= max_points:
        return eligible
    chosen = np.random.default_rng(seed).choice(eligible, size=max_points, replace=False)
    return np.sort(chosen)


def token_context(tokens: list[str], position: int, width: int = CONTEXT_TOKENS) -> str:
    """The `width` tokens on each side of `position`, the token itself marked as [[token]]."""
    before = tokens[max(0, position - width) : position]
    after = tokens[position + 1 : position + 1 + width]
    return " ".join([*before, f"[[{tokens[position]}]]", *after])


def tsne_2d(
    vectors: np.ndarray,
    perplexity: float = 30.0,
    seed: int = 0,
    pca_dims: int | None = 50,
    n_jobs: int | None = None,
    progress: bool | None = False,
    progress_label: str = "t-SNE",
) -> np.ndarray:
    """(N, D) vectors -> (N, 2) float32 map: optional PCA, then openTSNE.

    `progress` None shows the iterations on stderr when it is a terminal.

    openTSNE uses its FFT gradient from FFT_MIN_POINTS points up and Barnes-Hut below. The
    perplexity is capped at (N - 1) / 3, the most that N points can support. Vectors that
    are all identical have no neighbourhoods to keep, so they all map to the origin.
    """
    vectors = np.asarray(vectors, dtype=np.float32)  # (N, D)
    n_points = vectors.shape[0]
    if n_points < MIN_TSNE_POINTS:
        raise ReportgenError(
            f"t-SNE needs at least {MIN_TSNE_POINTS} points, got {n_points}; "
            "raise --max-points or analyse a longer text"
        )
    if not np.isfinite(vectors).all():
        raise ReportgenError("the state vectors contain NaN or infinity; check the checkpoint")
    if np.ptp(vectors, axis=0).max() == 0:
        return np.zeros((n_points, 2), dtype=np.float32)
    if pca_dims and pca_dims < vectors.shape[1]:
        pca = PCA(n_components=min(pca_dims, n_points), random_state=seed)
        vectors = pca.fit_transform(vectors)  # (N, pca_dims)
    tsne = openTSNE.TSNE(
        perplexity=min(perplexity, (n_points - 1) / 3),
        negative_gradient_method="fft" if n_points >= FFT_MIN_POINTS else "bh",
        n_jobs=n_jobs or available_cores(),
        random_state=seed,
        callbacks_every_iters=PROGRESS_EVERY_ITERATIONS,
    )
    iterations = tsne.early_exaggeration_iter + tsne.n_iter
    with Progress(progress_label, iterations, "iterations", **progress_enabled(progress)) as bar:
        tsne.callbacks = [lambda *_: bar.advance(PROGRESS_EVERY_ITERATIONS)]
        return np.asarray(tsne.fit(vectors), dtype=np.float32)


def cluster_labels(xy: np.ndarray, options: EmbeddingOptions) -> dict[str, np.ndarray]:
    """Both linkages' labels for a map, as the options ask: linkage -> (N,) int64."""
    return {
        "single": single_linkage_labels(
            xy, options.n_clusters, options.distance_threshold, options.min_cluster_size
        ),
        "ward": ward_labels(xy, options.n_clusters, options.distance_threshold),
    }


def ward_labels(
    points: np.ndarray, n_clusters: int | None = None, distance_threshold: float | None = None
) -> np.ndarray:
    """Ward clusters of (N, D) points, numbered by size: (N,) int64."""
    check_cut(n_clusters, distance_threshold)
    points = np.ascontiguousarray(points, dtype=np.float64)  # (N, D)
    if len(points) == 1:
        return np.zeros(1, dtype=np.int64)
    tree = fastcluster.linkage_vector(points, method="ward")  # (N-1, 4)
    if n_clusters is not None:
        labels = fcluster(tree, n_clusters, criterion="maxclust")
    else:
        labels = fcluster(tree, distance_threshold, criterion="distance")
    return number_by_size(labels)


def single_linkage_labels(
    points: np.ndarray,
    n_clusters: int | None = None,
    distance_threshold: float | None = None,
    min_cluster_size: int = 1,
) -> np.ndarray:
    """Single-linkage clusters of (N, 2) points, numbered by size: (N,) int64.

    With `n_clusters` the tree is cut n_clusters - 1 times, with `distance_threshold` at every
    merge higher than it; a cut happens only where both sides keep `min_cluster_size` points,
    so fewer clusters may come back.
    """
    check_cut(n_clusters, distance_threshold)
    tree = single_linkage_tree(points)
    labels = cut_tree(tree, n_clusters, distance_threshold, min_cluster_size)
    return number_by_size(labels)


def single_linkage_tree(points: np.ndarray) -> np.ndarray:
    """scipy-style linkage matrix (N-1, 4) of single linkage on (N, 2) points, via the MST."""
    points = np.asarray(points, dtype=np.float64)  # (N, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"single linkage here works on (N, 2) points, got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or infinity")
    sources, targets, lengths = euclidean_mst(points)
    return linkage_from_tree(len(points), sources, targets, lengths)


def euclidean_mst(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Euclidean minimum spanning tree of (N, 2) points as N-1 edges (u, v, length).

    Duplicate points are joined to their first copy by zero-length edges, and the distinct
    points are spanned through their Delaunay triangulation, or along their line when they are
    collinear (Qhull cannot triangulate a line).
    """
    unique, first, inverse = np.unique(points, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)  # (N,) index into unique; numpy 2.0 returned it 2-D
    duplicates = np.flatnonzero(first[inverse] != np.arange(len(points)))  # (N-U,)
    u, v, length = distinct_points_mst(unique)
    return (
        np.concatenate([first[u], duplicates]),
        np.concatenate([first[v], first[inverse[duplicates]]]),
        np.concatenate([length, np.zeros(len(duplicates))]),
    )


def distinct_points_mst(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MST edges (u, v, length) of (U, 2) distinct points."""
    if len(points) < 3 or is_collinear(points):
        return line_mst(points)
    triangulation = Delaunay(points)
    indptr, indices = triangulation.vertex_neighbor_vertices
    rows = np.repeat(np.arange(len(points)), np.diff(indptr))  # (E,) each edge both ways
    lengths = np.linalg.norm(points[rows] - points[indices], axis=1)  # (E,)
    graph = csr_matrix((lengths, indices, indptr), shape=(len(points), len(points)))
    tree = minimum_spanning_tree(graph).tocoo()
    u, v, length = tree.row, tree.col, tree.data
    # Qhull leaves out points within rounding of a vertex ("coplanar"); join each to its vertex.
    stray = triangulation.coplanar[:, 0]
    nearest = triangulation.coplanar[:, 2]
    return (
        np.concatenate([u, stray]).astype(np.int64),
        np.concatenate([v, nearest]).astype(np.int64),
        np.concatenate([length, np.linalg.norm(points[stray] - points[nearest], axis=1)]),
    )


def is_collinear(points: np.ndarray) -> bool:
    """True when the (U, 2) points lie on one line, up to COLLINEAR_TOLERANCE."""
    singular = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)  # (2,)
    return bool(singular[1] <= COLLINEAR_TOLERANCE * singular[0])


def line_mst(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MST of points on a line: consecutive points along the line's direction."""
    centred = points - points.mean(axis=0)  # (U, 2)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]  # (2,)
    order = np.argsort(centred @ direction, kind="stable")  # (U,)
    u, v = order[:-1], order[1:]
    return u.astype(np.int64), v.astype(np.int64), np.linalg.norm(points[u] - points[v], axis=1)


def linkage_from_tree(
    n_points: int, sources: np.ndarray, targets: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Merge a spanning tree's edges shortest first into a scipy linkage matrix (N-1, 4).

    Row i merges clusters Z[i, 0] and Z[i, 1] (leaves are 0..N-1, row i makes cluster N+i) at
    height Z[i, 2] into a cluster of Z[i, 3] points, as `scipy.cluster.hierarchy` expects.
    """
    # Plain lists: this loop runs once per point, and list indexing is much faster than numpy's.
    parent = list(range(n_points))  # union-find forest over leaves
    cluster_of_root = list(range(n_points))  # root leaf -> current cluster id
    size_of_root = [1] * n_points
    sources, targets, lengths = sources.tolist(), targets.tolist(), np.asarray(lengths)
    tree = np.empty((n_points - 1, 4))
    for row, edge in enumerate(np.argsort(lengths, kind="stable").tolist()):
        a, b = find_root(parent, sources[edge]), find_root(parent, targets[edge])
        if size_of_root[a] < size_of_root[b]:
            a, b = b, a
        first, second = sorted((cluster_of_root[a], cluster_of_root[b]))
        size = size_of_root[a] + size_of_root[b]
        tree[row] = (first, second, lengths[edge], size)
        parent[b] = a
        size_of_root[a] = size
        cluster_of_root[a] = n_points + row
    return tree


def find_root(parent: list[int], node: int) -> int:
    """Union-find root with path halving."""
    while parent[node] != node:
        parent[node] = parent[parent[node]]
        node = parent[node]
    return node


def cut_tree(
    tree: np.ndarray,
    n_clusters: int | None,
    distance_threshold: float | None,
    min_cluster_size: int = 1,
) -> np.ndarray:
    """Flat labels (N,) from a linkage matrix, cutting the highest merges first.

    Each cluster is followed down the tree from its top: a merge with one side smaller than
    `min_cluster_size` is not a cut, and that side stays in the cluster. The highest merge with
    two large enough sides, over all clusters, is cut next: its smaller side becomes a new
    cluster. This stops after n_clusters - 1 cuts, when the next cut is not above the
    threshold, or when only merges at height 0 (identical points) are left.
    """
    n_points = len(tree) + 1
    sizes = np.concatenate([np.ones(n_points), tree[:, 3]])  # (2N-1,) points under each node

    def next_cut(node: int) -> int | None:
        while node >= n_points:
            left, right = (int(child) for child in tree[node - n_points, :2])
            big_left, big_right = (sizes[c] >= min_cluster_size for c in (left, right))
            if big_left and big_right:
                return node
            if not (big_left or big_right):
                return None
            node = left if big_left else right
        return None

    cut_at: dict[int, int] = {}  # node that starts a cluster -> its label
    heap: list[tuple[float, int, int]] = []  # (-height, node, label) of each cluster's next cut

    def follow(node: int, label: int) -> None:
        cut = next_cut(node)
        if cut is not None and tree[cut - n_points, 2] > 0:  # never split identical points
            heapq.heappush(heap, (-tree[cut - n_points, 2], cut, label))

    root = 2 * n_points - 2
    cut_at[root] = 0
    follow(root, 0)
    while heap:
        height = -heap[0][0]
        if n_clusters is not None and len(cut_at) >= n_clusters:
            break
        if distance_threshold is not None and height <= distance_threshold:
            break
        _, node, label = heapq.heappop(heap)
        left, right = (int(child) for child in tree[node - n_points, :2])
        stays, leaves = (left, right) if sizes[left] >= sizes[right] else (right, left)
        new_label = len(cut_at)
        cut_at[leaves] = new_label
        follow(stays, label)
        follow(leaves, new_label)
    return labels_below(tree, cut_at)


def labels_below(tree: np.ndarray, cut_at: dict[int, int]) -> np.ndarray:
    """(N,) labels: each leaf takes the label of its nearest ancestor that starts a cluster."""
    n_points = len(tree) + 1
    children = tree[:, :2].astype(np.int64).tolist()  # (N-1,) pairs
    node_label = [-1] * (2 * n_points - 1)
    for node in range(2 * n_points - 2, n_points - 1, -1):  # parents have larger ids
        label = cut_at.get(node, node_label[node])
        for child in children[node - n_points]:
            node_label[child] = label
    leaves = [cut_at.get(leaf, node_label[leaf]) for leaf in range(n_points)]
    return np.array(leaves, dtype=np.int64)


def number_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber (N,) labels so cluster 0 is the largest; ties go to the earliest first member."""
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)  # (N,)
    sizes = np.bincount(inverse)  # (K,)
    first_member = np.full(len(sizes), len(labels))
    np.minimum.at(first_member, inverse, np.arange(len(labels)))
    order = np.lexsort((first_member, -sizes))  # (K,) old cluster ids, new numbering order
    new_number = np.empty(len(sizes), dtype=np.int64)
    new_number[order] = np.arange(len(sizes))
    return new_number[inverse]


def cluster_tables(labels: np.ndarray, tokens: list[str]) -> list[ClusterRow]:
    """One row per cluster, in cluster order, with all its words by count (ties by word)."""
    counters: dict[int, Counter[str]] = {}
    for label, token in zip(labels.tolist(), tokens, strict=True):
        counters.setdefault(label, Counter())[token] += 1
    return [
        ClusterRow(
            cluster=label,
            size=sum(counter.values()),
            words=tuple(sorted(counter.items(), key=lambda item: (-item[1], item[0]))),
        )
        for label, counter in sorted(counters.items())
    ]
