"""--threads: one limit for PyTorch, the BLAS and OpenMP pools, and openTSNE."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from threadpoolctl import threadpool_info

from reportgen.cli import limited_threads, main


def test_the_limit_holds_inside_and_is_lifted_after() -> None:
    before = torch.get_num_threads()
    pools_before = [pool["num_threads"] for pool in threadpool_info()]
    with limited_threads(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    assert [pool["num_threads"] for pool in threadpool_info()] == pools_before


def test_a_report_with_one_thread_records_it(tiny_model: Path, tiny_corpus: Path,
                                             tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                 "--max-tokens", "300", "--maps", "L1-h", "--no-images", "--quiet",
                 "--threads", "1"]) == 0
    record = json.loads((out / "data" / "report.json").read_text(encoding="utf-8"))
    assert record["options"]["embedding"]["n_jobs"] == 1
