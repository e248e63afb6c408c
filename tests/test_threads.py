"""--threads: one limit for PyTorch, the BLAS and OpenMP pools, and openTSNE; applied to the run,
never written into the report."""

from __future__ import annotations

from pathlib import Path

import torch
from test_atomic_and_reproducible import comparable
from threadpoolctl import threadpool_info

from reportgen.cli.main import main
from reportgen.threads import limited_threads


def test_the_limit_holds_inside_and_is_lifted_after() -> None:
    before = torch.get_num_threads()
    pools_before = [pool["num_threads"] for pool in threadpool_info()]
    assert pools_before, "threadpoolctl lists no BLAS or OpenMP pool: nothing here checks the limit"
    with limited_threads(1):
        assert torch.get_num_threads() == 1
        assert [pool["num_threads"] for pool in threadpool_info()] == [1] * len(pools_before)
    assert torch.get_num_threads() == before
    assert [pool["num_threads"] for pool in threadpool_info()] == pools_before


def test_one_and_two_threads_give_the_same_report(tiny_model: Path, tiny_corpus: Path,
                                                  tmp_path: Path) -> None:
    """The thread count changes how fast a report is made, never what it says: every file has
    the same bytes (report.json but its timings), so two machines give the same report. The map
    has more than 1,000 points, where openTSNE's neighbour search is approximate and, run on two
    threads, found other neighbours than on one (`analysis.embedding.single_thread_affinities`)."""
    sites = []
    for threads in (1, 2):
        out = tmp_path / f"threads-{threads}"
        assert main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                     "--max-tokens", "1200", "--max-points", "1100", "--maps", "L1-h",
                     "--top-neurons", "2", "--no-images", "--no-cache", "--quiet",
                     "--threads", str(threads)]) == 0
        sites.append(comparable(out))
    assert sites[0] == sites[1]
