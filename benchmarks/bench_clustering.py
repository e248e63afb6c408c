"""Time reportgen's single linkage and t-SNE against scikit-learn, on synthetic mixtures.

Single linkage clusters 2-D points from a Gaussian mixture, as it would a t-SNE map. t-SNE maps
650-D vectors (the width of a medium LSTM layer) from a Gaussian mixture; both sides get PCA to
50 dimensions first, so the comparison is openTSNE against scikit-learn's TSNE. Each ratio comes
from one run. Baselines above --baseline-max points are skipped, with an estimate extrapolated
from the largest size measured (single linkage in scikit-learn is O(N^2), its t-SNE about O(N)).

    python benchmarks/bench_clustering.py --sizes 5000 20000 50000 --baseline-max 20000
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_info

from reportgen.analysis.clustering import single_linkage_labels
from reportgen.analysis.embedding import available_cores, tsne_2d

N_COMPONENTS = 20  # mixture components, and clusters asked for
TSNE_DIMS = 650
PCA_DIMS = 50


def gaussian_mixture(n_points: int, dims: int, spread: float, seed: int):
    """(n_points, dims) float32 points around N_COMPONENTS random centres, and their component."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(N_COMPONENTS, dims))
    component = rng.integers(0, N_COMPONENTS, size=n_points)
    points = centres[component] + rng.normal(size=(n_points, dims))
    return points.astype(np.float32), component


def timed(function: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def neighbour_agreement(xy: np.ndarray, component: np.ndarray, k: int = 10) -> float:
    """Share of each point's k nearest map neighbours from its own mixture component."""
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy)[1][:, 1:]
    return float((component[neighbours] == component[:, None]).mean())


def sklearn_tsne(vectors: np.ndarray, seed: int) -> np.ndarray:
    reduced = PCA(n_components=PCA_DIMS, random_state=seed).fit_transform(vectors)
    return TSNE(perplexity=30, init="pca", random_state=seed, n_jobs=-1).fit_transform(reduced)


def skipped(last: tuple[int, float] | None, n_points: int, power: int) -> str:
    if last is None:
        return "skipped (above --baseline-max)"
    measured_n, measured_s = last
    return f"skipped (est. >{measured_s * (n_points / measured_n) ** power:.0f}s)"


def bench_single_linkage(sizes: list[int], seed: int, baseline_max: int) -> None:
    print("single linkage, 2-D Gaussian mixture, 20 clusters")
    last_baseline: tuple[int, float] | None = None
    for n_points in sizes:
        points, _ = gaussian_mixture(n_points, 2, spread=10.0, seed=seed)
        ours, ours_s = timed(lambda: single_linkage_labels(points, N_COMPONENTS))
        line = f"  {n_points:>7} points: reportgen {ours_s:7.2f}s"
        if n_points <= baseline_max:
            model = AgglomerativeClustering(n_clusters=N_COMPONENTS, linkage="single")
            theirs, theirs_s = timed(lambda: model.fit_predict(points))
            last_baseline = (n_points, theirs_s)
            agreement = adjusted_rand_score(theirs, ours)
            line += (
                f"  scikit-learn {theirs_s:7.2f}s  ratio {theirs_s / ours_s:6.1f}x"
                f"  ARI {agreement:.3f}"
            )
        else:
            line += f"  scikit-learn {skipped(last_baseline, n_points, power=2)}"
        print(line, flush=True)


def bench_tsne(sizes: list[int], seed: int, baseline_max: int) -> None:
    print(f"t-SNE, {TSNE_DIMS}-D Gaussian mixture, PCA to {PCA_DIMS}, perplexity 30")
    last_baseline: tuple[int, float] | None = None
    for n_points in sizes:
        vectors, component = gaussian_mixture(n_points, TSNE_DIMS, spread=0.3, seed=seed)
        ours, ours_s = timed(lambda: tsne_2d(vectors, perplexity=30, seed=seed, pca_dims=PCA_DIMS))
        line = (
            f"  {n_points:>7} points: reportgen {ours_s:7.1f}s"
            f" (10-NN agreement {neighbour_agreement(ours, component):.3f})"
        )
        if n_points <= baseline_max:
            theirs, theirs_s = timed(lambda: sklearn_tsne(vectors, seed))
            last_baseline = (n_points, theirs_s)
            line += (
                f"  scikit-learn {theirs_s:7.1f}s"
                f" (10-NN agreement {neighbour_agreement(theirs, component):.3f})"
                f"  ratio {theirs_s / ours_s:5.1f}x"
            )
        else:
            line += f"  scikit-learn {skipped(last_baseline, n_points, power=1)}"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline-max",
        type=int,
        default=20000,
        help="largest size run through scikit-learn; larger ones print an estimate",
    )
    parser.add_argument("--skip-tsne", action="store_true", help="time single linkage only")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    blas = ", ".join(f"{pool['internal_api']} {pool['num_threads']}" for pool in threadpool_info())
    print(f"threads: {available_cores()} cores available (t-SNE n_jobs), BLAS pools: {blas}")
    print("load average at start: " + " ".join(f"{load:.1f}" for load in os.getloadavg()))
    bench_single_linkage(sizes, args.seed, args.baseline_max)
    if not args.skip_tsne:
        bench_tsne(sizes, args.seed, args.baseline_max)
    print("load average at end: " + " ".join(f"{load:.1f}" for load in os.getloadavg()))


if __name__ == "__main__":
    main()
