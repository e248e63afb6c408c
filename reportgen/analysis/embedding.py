"""Word representations: sample positions, map one state's vectors to 2-D, cluster the map.

The stages are public so that a notebook can run any one of them alone:

    sample_positions -> pca_vectors -> tsne_2d -> clustering.cut_labels -> cluster_tables

and `embed(capture, layer, state)` chains them into an `EmbeddingResult`, which gives the
`points.csv` and `clusters.csv` rows and its own chart. The clustering itself lives in
`reportgen.analysis.clustering`.

Why these methods (DESIGN.md 3.3, measured on 2 cores): openTSNE's FFT gradient beats its
Barnes-Hut from about 15k points up: on a 2x650 model's layer-1 states after PCA to 50,
Barnes-Hut took 9-11 s for 5k points, 25 s for 10k and 56 s for 20k, FFT 22 s, 32 s and 47 s.
Both beat scikit-learn's TSNE at 20k (146 s). PCA to 50 loses nothing in kNN accuracy. The
gradient is chosen by size (see FFT_MIN_POINTS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import altair as alt
import numpy as np
import openTSNE
import pandas as pd
from openTSNE.affinity import MultiscaleMixture
from sklearn.decomposition import PCA

from reportgen.analysis.clustering import (
    CLASS_SHOWN_SHARE,
    LINKAGES,
    ClusterRow,
    Cut,
    check_cut,
    check_linkage,
    cluster_tables,
    cut_labels,
)
from reportgen.capture.core import Capture, StateKey, state_name
from reportgen.charts import embedding_chart
from reportgen.errors import ReportgenError
from reportgen.inputs.word_classes import class_flags
from reportgen.progress import Progress, progress_enabled
from reportgen.threads import limited_threads

CUTS = (10, 20, 40, 80, 160)  # the granularities every tree is cut at, for the page's selector
CONTEXT_TOKENS = 4  # tokens shown on each side of a point's token in its tooltip
MIN_TSNE_POINTS = 3  # openTSNE's PCA initialisation needs at least this many points
# openTSNE's FFT gradient has a fixed cost per iteration that dominates on small maps. Measured
# with one thread: 1k points take 4.9 s with Barnes-Hut and 11.9 s with FFT; 5k points 32 s and
# 27 s (machine under load). Below this size Barnes-Hut is used.
FFT_MIN_POINTS = 15_000  # Barnes-Hut below, where it is faster
PROGRESS_EVERY_ITERATIONS = 50  # t-SNE iterations between progress updates


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
        the text and every row of points.csv matches tokens.csv.gz; pass ("<eos>",) to drop line ends.
    pca_dims: PCA before t-SNE to this many dimensions; 0 or None maps the raw vectors.
    n_clusters / distance_threshold: the default cut, exactly one is set. The threshold is in
        the linkage's own height units (Euclidean map distance for single, Ward's distance for
        ward). The trees are also cut at every number of clusters in `cuts`, for the page.
    min_cluster_size: single linkage only cuts where both sides keep this many points (see the
        module docstring); 1 gives the classical cut.
    """

    max_points: int = 5000
    seed: int = 0
    exclude: tuple[str, ...] = ()
    pca_dims: int | None = 50
    perplexity: float = 30.0
    n_clusters: int | None = 40
    distance_threshold: float | None = None
    min_cluster_size: int = 10
    cuts: tuple[int, ...] = CUTS

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
        if any(k < 1 for k in self.cuts):
            raise ReportgenError(f"every cut needs at least 1 cluster, got {self.cuts}")

    @property
    def all_cuts(self) -> tuple[int, ...]:
        """The numbers of clusters each tree is cut at, the default's included, ascending;
        0 stands for the cut at `distance_threshold`."""
        default = self.n_clusters if self.n_clusters is not None else 0
        return tuple(sorted({*self.cuts, default}))

    @property
    def default_cut(self) -> int:
        return self.n_clusters if self.n_clusters is not None else 0


@dataclass
class EmbeddingResult:
    """The sampled points of one layer and state, their t-SNE map and their clusters at every
    cut; `labels` and `tables` are those of the default cut."""

    key: StateKey
    positions: np.ndarray  # (N,) int64, sorted positions in the text
    tokens: list[str]  # N token strings, untrusted corpus text
    contexts: list[str]  # N strings: the tokens around each point, the token as [[token]]
    xy: np.ndarray  # (N, 2) float32 t-SNE coordinates
    pca: np.ndarray  # (N, D) float32 the vectors the map was made from
    classes: dict[str, np.ndarray]  # class name -> (N,) bool, for the clusters' class
    cut_labels: dict[Cut, np.ndarray]  # (linkage, K) -> (N,) int64, 0 the largest cluster
    cut_tables: dict[Cut, list[ClusterRow]]  # (linkage, K) -> rows ordered by cluster number
    options: EmbeddingOptions

    @property
    def n_points(self) -> int:
        return len(self.tokens)

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """linkage -> (N,) labels at the default cut."""
        return {name: self.cut_labels[(name, self.options.default_cut)] for name in LINKAGES}

    @property
    def tables(self) -> dict[str, list[ClusterRow]]:
        """linkage -> cluster rows at the default cut."""
        return {name: self.cut_tables[(name, self.options.default_cut)] for name in LINKAGES}

    def points_frame(self) -> pd.DataFrame:
        """points.csv rows: layer, state, position, token, x, y, cluster_single, cluster_ward,
        cluster_ward_pca (the default cut), then cluster_<linkage>_k<K> for every cut."""
        layer, state = self.key
        columns = {f"cluster_{name}": self.labels[name] for name in LINKAGES}
        columns.update({f"cluster_{name}_k{k}": self.cut_labels[(name, k)]
                        for name in LINKAGES for k in self.options.all_cuts if k})
        return pd.DataFrame(
            {
                "layer": np.full(self.n_points, layer, dtype=np.int64),
                "state": [state] * self.n_points,
                "position": self.positions,
                "token": self.tokens,
                "x": self.xy[:, 0],
                "y": self.xy[:, 1],
                **columns,
            }
        )

    def clusters_frame(self, every_cut: bool = False) -> pd.DataFrame:
        """clusters.csv rows: layer, state, linkage, cluster, size, words (all of them), class,
        class_share, top_class, top_class_share, at the default cut; `every_cut` gives every
        cut, with n_clusters first (0 for a distance threshold).

        `class` names the cluster only where at least `CLASS_SHOWN_SHARE` of its points belong
        to its most common class, as the page does: a 423-token cluster of nouns is not
        "pronoun" because 1.2% of it is. Below that, `class` and `class_share` are empty, and
        `top_class` and `top_class_share` still give the plurality."""
        layer, state = self.key
        cuts = self.options.all_cuts if every_cut else (self.options.default_cut,)
        rows = []
        for k in cuts:
            for name in LINKAGES:
                for row in self.cut_tables[(name, k)]:
                    share = round(row.class_share, 6)
                    named = bool(row.word_class) and row.class_share >= CLASS_SHOWN_SHARE
                    rows.append((k, layer, state, name, row.cluster, row.size, row.words_text(),
                                 row.word_class if named else "", share if named else np.nan,
                                 row.word_class, share))
        frame = pd.DataFrame(rows, columns=["n_clusters", "layer", "state", "linkage", "cluster",
                                            "size", "words", "class", "class_share", "top_class",
                                            "top_class_share"])
        return frame if every_cut else frame.drop(columns="n_clusters")

    def recluster(
        self, n_clusters: int | None = None, distance_threshold: float | None = None
    ) -> EmbeddingResult:
        """The same map cut at another default granularity, without running t-SNE again."""
        options = replace(
            self.options, n_clusters=n_clusters, distance_threshold=distance_threshold
        )
        return replace(self, options=options, **clusters_of(self.xy, self.pca, self.tokens,
                                                            self.classes, options))

    def chart(self, linkage: str = "ward") -> alt.Chart:
        """The t-SNE map coloured by `linkage` cluster, with token and context in the tooltip."""
        check_linkage(linkage, list(self.labels))
        return embedding_chart(self.xy, self.positions, self.tokens, self.contexts,
                               self.labels[linkage], state_name(self.key), linkage)


def clusters_of(xy: np.ndarray, pca: np.ndarray, tokens: list[str],
                classes: dict[str, np.ndarray], options: EmbeddingOptions) -> dict[str, dict]:
    """The `cut_labels` and `cut_tables` fields of an `EmbeddingResult`."""
    labels = cut_labels(xy, pca, tuple(k for k in options.all_cuts if k),
                        options.min_cluster_size, options.distance_threshold)
    return {"cut_labels": labels,
            "cut_tables": {cut: cluster_tables(values, tokens, classes)
                           for cut, values in labels.items()}}


def embed(
    capture: Capture, layer: int, state: str, options: EmbeddingOptions | None = None,
    progress: bool | None = False, classes: dict[str, np.ndarray] | None = None,
    n_jobs: int | None = None,
) -> EmbeddingResult:
    """Sample positions, map their `(layer, state)` vectors with t-SNE and cluster the map.

    `classes` (name -> (T,) bool over the text) name each cluster by its most common class; by
    default the closed word classes of `reportgen.inputs.word_classes`. `progress` None shows the
    t-SNE iterations on stderr when it is a terminal. `n_jobs` is t-SNE's threads, every core
    this process may use by default: an argument of the run, not an option of the map, since it
    changes no coordinate and a report must not depend on the machine it was made on.
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
    check_vectors(vectors)
    reduced = pca_vectors(vectors, options.pca_dims, options.seed)  # (N, D)
    xy = tsne_2d(reduced, options.perplexity, options.seed, None, n_jobs,
                 progress, f"t-SNE {state_name(key)}")
    tokens = [capture.tokens[p] for p in positions]
    if classes is None:
        classes = class_flags(capture.tokens)
    point_classes = {name: np.asarray(flags)[positions] for name, flags in classes.items()}
    return EmbeddingResult(
        key=key,
        positions=positions,
        tokens=tokens,
        contexts=[token_context(capture.tokens, int(p)) for p in positions],
        xy=xy,
        pca=reduced,
        classes=point_classes,
        options=options,
        **clusters_of(xy, reduced, tokens, point_classes, options),
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
    check_vectors(vectors)
    if np.ptp(vectors, axis=0).max() == 0:
        return np.zeros((n_points, 2), dtype=np.float32)
    vectors = pca_vectors(vectors, pca_dims, seed)
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
        return np.asarray(tsne.fit(vectors, affinities=single_thread_affinities(tsne, vectors)),
                          dtype=np.float32)


def single_thread_affinities(tsne: openTSNE.TSNE, vectors: np.ndarray) -> MultiscaleMixture:
    """The affinities `tsne.fit(vectors)` would compute, on one thread whatever `tsne.n_jobs`.

    openTSNE's neighbour search gives slightly different affinities on two threads than on
    one, and t-SNE turns that into another map; its gradient steps give the same map on any
    number of threads. So the map depends on the command, never on the machine's cores.
    """
    return MultiscaleMixture(vectors, tsne.perplexity, method=tsne.neighbors, metric=tsne.metric,
                             metric_params=tsne.metric_params, n_jobs=1,
                             random_state=tsne.random_state, verbose=tsne.verbose,
                             knn_kwargs=tsne.knn_kwargs)


def check_vectors(vectors: np.ndarray) -> None:
    """(N, D) vectors that t-SNE can map: enough of them, all finite."""
    if vectors.shape[0] < MIN_TSNE_POINTS:
        raise ReportgenError(
            f"t-SNE needs at least {MIN_TSNE_POINTS} points, got {vectors.shape[0]}; "
            "raise --max-points or analyse a longer text"
        )
    if not np.isfinite(vectors).all():
        raise ReportgenError("the state vectors contain NaN or infinity; check the checkpoint")


def pca_vectors(vectors: np.ndarray, pca_dims: int | None, seed: int) -> np.ndarray:
    """(N, H) -> (N, min(pca_dims, N, H)) float32 principal components, or the vectors
    themselves without `pca_dims` or when they have no more dimensions than that."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if not pca_dims or pca_dims >= vectors.shape[1] or np.ptp(vectors, axis=0).max() == 0:
        return vectors
    pca = PCA(n_components=min(pca_dims, vectors.shape[0]), random_state=seed)
    with limited_threads(1):  # t-SNE makes another map of components that differ in a last bit
        return pca.fit_transform(vectors).astype(np.float32)
