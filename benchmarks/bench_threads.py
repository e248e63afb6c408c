"""What one-thread sections cost: the parts of a report that run on one thread whatever
`--threads` says, so that the report's bytes do not depend on the machine's cores.

Three parts (reportgen/threads.py): t-SNE's affinities (openTSNE's neighbour search), the PCA
before t-SNE, and the correlations' matrix products. Each is timed as reportgen runs it, on one
thread, against the same work on `--threads` threads, which is what it cost before; the t-SNE
line times the whole map (affinities and gradient steps), so its ratio is what a report pays.
Each line is the median of --repeats runs after one to warm up; the maps are also compared, to show why.

    python benchmarks/bench_threads.py --threads 2 --points 5000 --units 650
"""

from __future__ import annotations

import argparse

import numpy as np
import openTSNE
import torch
from bench_report import median_seconds
from sklearn.decomposition import PCA

from reportgen.analysis.embedding import EmbeddingOptions, pca_vectors, tsne_2d
from reportgen.threads import limited_threads

PCA_DIMS = EmbeddingOptions().pca_dims
TOKENS = 40_000  # positions of the correlations' states
PAGED = 40  # units whose partners are found, per layer and state


def tsne_on_all_threads(vectors: np.ndarray, threads: int) -> np.ndarray:
    """The map as it was made before: openTSNE's own affinities, on every thread."""
    n_points = vectors.shape[0]
    tsne = openTSNE.TSNE(perplexity=min(30.0, (n_points - 1) / 3), negative_gradient_method="bh",
                         n_jobs=threads, random_state=0)
    return np.asarray(tsne.fit(vectors), dtype=np.float32)


def pca_on_all_threads(vectors: np.ndarray) -> np.ndarray:
    return PCA(n_components=PCA_DIMS, random_state=0).fit_transform(vectors).astype(np.float32)


def cross_products(states: torch.Tensor, paged: torch.Tensor) -> torch.Tensor:
    """(P, H) sums of products over positions, as analysis.correlations accumulates them."""
    return paged.T @ states


def line(name: str, new: float, old: float) -> None:
    print(f"{name:<34} {new:8.2f} s {old:8.2f} s {new / old:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads of the old way (default: 2)")
    parser.add_argument("--points", type=int, default=5000, help="map points (default: 5000)")
    parser.add_argument("--units", type=int, default=650, help="units of a layer (default: 650)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per median (default: 3)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.points, args.units)).astype(np.float32)  # (N, H)
    vectors[:, : args.units // 10] += rng.integers(0, 20, size=(args.points, 1))  # clusters
    states = torch.from_numpy(rng.normal(size=(TOKENS, args.units)).astype(np.float32))  # (T, H)
    paged = states[:, :PAGED].contiguous()  # (T, P)
    print(f"threads: reportgen's one-thread sections against {args.threads} threads; "
          f"torch {torch.get_num_threads()} threads by default; median of {args.repeats}")
    print(f"{'part':<34} {'one thread':>10} {'threads':>10} {'ratio':>9}")
    with limited_threads(args.threads):
        reduced = pca_vectors(vectors, PCA_DIMS, 0)
        line(f"PCA {args.points}x{args.units} -> {PCA_DIMS}",
             median_seconds(lambda: pca_vectors(vectors, PCA_DIMS, 0), args.repeats),
             median_seconds(lambda: pca_on_all_threads(vectors), args.repeats))
        new_map = tsne_2d(reduced, seed=0, pca_dims=None, n_jobs=args.threads)
        old_map = tsne_on_all_threads(reduced, args.threads)
        line(f"t-SNE of {args.points} points",
             median_seconds(lambda: tsne_2d(reduced, seed=0, pca_dims=None, n_jobs=args.threads),
                            args.repeats),
             median_seconds(lambda: tsne_on_all_threads(reduced, args.threads), args.repeats))
        with limited_threads(1):
            one = median_seconds(lambda: cross_products(states, paged), args.repeats)
        line(f"correlations {TOKENS}x{PAGED}x{args.units}", one,
             median_seconds(lambda: cross_products(states, paged), args.repeats))
        one_thread_map = tsne_on_all_threads(reduced, 1)
    print(f"map on {args.threads} threads as before vs on one: max |difference| "
          f"{np.abs(old_map - one_thread_map).max():.1f} t-SNE units; now: "
          f"{np.abs(new_map - tsne_2d(reduced, seed=0, pca_dims=None, n_jobs=1)).max():.1f}")


if __name__ == "__main__":
    main()
