"""Thread limits: one for PyTorch and for the BLAS and OpenMP pools of NumPy, scikit-learn and
openTSNE.

The command applies the user's `--threads` with it. The analyses whose bytes would otherwise
depend on the thread count run their reductions with one thread: a matrix product split over
threads sums in another order, and t-SNE turns a last-bit difference into another map. So a
report is the same on any machine, whatever its cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


@contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Run with at most `threads` threads in PyTorch and in the BLAS and OpenMP pools that
    NumPy, scikit-learn and openTSNE use; None leaves every pool as it is."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)
