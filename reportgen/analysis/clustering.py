"""Clustering of one map's points: single and ward linkage, cut at several granularities.

`embedding` maps a layer-state's vectors to 2-D; this module groups the points, in the plane of
the map or in the PCA space the map was made from, and names each cluster by its word class.

Why these methods (DESIGN.md 3.3, measured on 2 cores):
- Single linkage on the map is read off the minimum spanning tree. In the plane the Euclidean
  MST is a subgraph of the Delaunay triangulation, so the MST of the triangulation's O(N) edges
  is exact and costs about 1 s for 100k points, where scikit-learn needs all O(N^2) pairs.
- Ward uses `fastcluster.linkage_vector`, which needs O(N) memory instead of a distance matrix,
  in 2-D on the map and in 50-D on the PCA vectors (`ward_pca`), since reviewers question
  clusters found in 2-D only.
- Each tree is built once and cut at every granularity of `EmbeddingOptions.cuts`, so the page
  can switch between 10 and 160 clusters without running anything.

On t-SNE maps of real text, plain single linkage can spend its cuts on stray points between
the islands and leave one giant cluster (DESIGN.md 3.3). `min_cluster_size` fixes that without
leaving single linkage: it cuts the same tree, but only where both sides keep at least that
many points; the strays stay with the cluster they hang off. With `min_cluster_size=1` the cut
is the classical one, identical to scipy's `fcluster` on `linkage(method="single")`.

A cluster's *class* is the word class (or the user's own token feature) that most of its points
belong to, with that share: the thesis's Table 5.1 names its layer-1 clusters this way.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import fastcluster
import numpy as np
from scipy.cluster.hierarchy import fcluster
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import Delaunay

from reportgen.errors import ReportgenError

LINKAGES = ("single", "ward", "ward_pca")  # ward_pca: ward on the PCA vectors, not on the map
LINKAGE_TITLES = {"single": "single linkage on the map", "ward": "ward linkage on the map",
                  "ward_pca": "ward linkage on the PCA states"}
COLLINEAR_TOLERANCE = 1e-10  # smaller-to-larger singular value ratio treated as a straight line
TOP_WORDS = 10  # words shown per cluster in tables; the export keeps all of them
CLASS_SHOWN_SHARE = 0.5  # a cluster is named by its class (pages, clusters.csv) from this share

Cut = tuple[str, int]  # (linkage, clusters asked for)


def check_linkage(linkage: str, linkages: Sequence[str]) -> None:
    """A map or the explorer can be coloured only by a linkage its results were clustered with."""
    if linkage not in linkages:
        raise ReportgenError(f"unknown linkage {linkage!r}; choose one of {', '.join(linkages)}")


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
    """One cluster of one linkage and cut: its number (0 the largest), size, words by count,
    and its class: the word class most of its points belong to, with their share."""

    cluster: int
    size: int
    words: tuple[tuple[str, int], ...]  # every word with its count, most frequent first
    word_class: str = ""  # "" when no point belongs to any class
    class_share: float = 0.0

    def top_words(self, limit: int = TOP_WORDS) -> tuple[tuple[str, int], ...]:
        """The words a table shows: the `limit` most frequent, with their counts."""
        return self.words[:limit]

    def words_text(self, limit: int | None = None) -> str:
        """`word:count` joined by spaces, as in clusters.csv (split each item on its last colon)."""
        return " ".join(f"{word}:{count}" for word, count in self.words[:limit])


def cut_labels(
    xy: np.ndarray,  # (N, 2) map
    pca: np.ndarray,  # (N, D) the vectors the map was made from
    cuts: tuple[int, ...],
    min_cluster_size: int,
    threshold: float | None = None,
) -> dict[Cut, np.ndarray]:
    """Every linkage's labels at every cut: (linkage, K) -> (N,) int64, 0 the largest.

    Each linkage's tree is built once. With a `threshold`, each tree is also cut at that height,
    stored under K = 0.
    """
    trees = {
        "single": single_linkage_tree(xy) if len(xy) > 1 else None,
        "ward": ward_tree(xy),
        "ward_pca": ward_tree(pca),
    }
    labels: dict[Cut, np.ndarray] = {}
    for linkage, tree in trees.items():
        size = min_cluster_size if linkage == "single" else 1
        wanted: list[tuple[int, int | None, float | None]] = [(k, k, None) for k in cuts]
        if threshold is not None:
            wanted.append((0, None, threshold))
        for key, k, height in wanted:
            if tree is None:
                labels[(linkage, key)] = np.zeros(len(xy), dtype=np.int64)
            elif linkage == "single":
                labels[(linkage, key)] = number_by_size(cut_tree(tree, k, height, size))
            else:
                labels[(linkage, key)] = ward_cut(tree, k, height)
    return labels


def ward_tree(points: np.ndarray) -> np.ndarray | None:
    """The ward linkage matrix (N-1, 4) of (N, D) points; None for a single point."""
    points = np.ascontiguousarray(points, dtype=np.float64)  # (N, D)
    if len(points) < 2:
        return None
    return fastcluster.linkage_vector(points, method="ward")


def ward_cut(tree: np.ndarray, n_clusters: int | None, threshold: float | None) -> np.ndarray:
    if n_clusters is not None:
        return number_by_size(fcluster(tree, n_clusters, criterion="maxclust"))
    return number_by_size(fcluster(tree, threshold, criterion="distance"))


def cluster_tables(
    labels: np.ndarray,  # (N,) int64
    tokens: list[str],
    classes: dict[str, np.ndarray] | None = None,  # class -> (N,) bool
) -> list[ClusterRow]:
    """One row per cluster, in cluster order, with all its words by count (ties by word) and
    its class, the class with the most points (ties in `classes` order)."""
    counters: dict[int, Counter[str]] = {}
    for label, token in zip(labels.tolist(), tokens, strict=True):
        counters.setdefault(label, Counter())[token] += 1
    names = list(classes or {})
    members = (np.stack([classes[name] for name in names], axis=1) if names
               else np.zeros((len(labels), 0), dtype=bool))  # (N, C)
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    per_cluster = np.zeros((n_clusters, len(names)))  # (K, C) points of each class
    np.add.at(per_cluster, labels, members.astype(np.float64))
    rows = []
    for label, counter in sorted(counters.items()):
        size = sum(counter.values())
        best = int(per_cluster[label].argmax()) if names else 0
        has_class = bool(names) and per_cluster[label, best] > 0
        rows.append(ClusterRow(
            cluster=label,
            size=size,
            words=tuple(sorted(counter.items(), key=lambda item: (-item[1], item[0]))),
            word_class=names[best] if has_class else "",
            class_share=float(per_cluster[label, best] / size) if has_class else 0.0,
        ))
    return rows


def ward_labels(
    points: np.ndarray, n_clusters: int | None = None, distance_threshold: float | None = None
) -> np.ndarray:
    """Ward clusters of (N, D) points, numbered by size: (N,) int64."""
    check_cut(n_clusters, distance_threshold)
    tree = ward_tree(points)
    if tree is None:
        return np.zeros(len(points), dtype=np.int64)
    return ward_cut(tree, n_clusters, distance_threshold)


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
