"""Sweeps: models that differ only in dropout and seed, trained together.

`train_sweep` trains one model per (dropout, seed) into `OUT/<name>/`, named for its settings
(`lstm-d0.2-s1`). A run that fails is recorded with its error and the sweep goes on, since a
sweep runs for hours and one crash (out of memory, a full disk) must not lose the others;
`OUT/sweep.csv` is rewritten after every run, so even a killed sweep leaves its table.

The models a sweep trained are reported together by `reportgen.runs.multi_report`, from the specs
that `reportgen.runs.model_specs` parses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path

import pandas as pd

from reportgen.csv_safety import neutralise_formulas
from reportgen.errors import ReportgenError
from reportgen.inputs.corpus import vocabulary_from_folder
from reportgen.progress import note
from reportgen.training.train import TrainConfig, TrainResult, train

SWEEP_TABLE = "sweep.csv"


@dataclass
class SweepRun:
    """One combination of a sweep: its settings, its folder, and its result or its error."""

    name: str
    config: TrainConfig
    folder: Path
    result: TrainResult | None = None
    error: str | None = None


@dataclass
class SweepResult:
    """Every run of a sweep, in training order; `failed` are those that ended in an error."""

    out: Path
    runs: list[SweepRun]

    @property
    def failed(self) -> list[SweepRun]:
        return [run for run in self.runs if run.error is not None]

    def to_frame(self) -> pd.DataFrame:
        """sweep.csv: one row per run; perplexities empty where the run failed or has not
        run yet (the file is rewritten after each run)."""
        return pd.DataFrame([{
            "model": run.name,
            "dropout": run.config.dropout,
            "seed": run.config.seed,
            "valid_perplexity": run.result.valid_perplexity if run.result else math.nan,
            "test_perplexity": run.result.test_perplexity if run.result else math.nan,
            "seconds": run.result.seconds if run.result else math.nan,
            "checkpoint": str(run.result.checkpoint.relative_to(self.out)) if run.result else "",
            "error": run.error or "",
        } for run in self.runs])

    def format_table(self) -> str:
        """The summary printed at the end of `reportgen train` with several settings."""
        rows = [("model", "dropout", "seed", "valid ppl", "test ppl", "time")]
        for run in self.runs:
            if run.result is not None:
                result = run.result
                figures = (f"{result.valid_perplexity:.2f}", f"{result.test_perplexity:.2f}",
                           f"{result.seconds:.0f} s")
            else:
                figures = ("failed", "", "")
            rows.append((run.name, f"{run.config.dropout:g}", str(run.config.seed), *figures))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                 for row in rows]
        lines += [f"{run.name}: {run.error}" for run in self.failed]
        return "\n".join(lines)


def run_name(config: TrainConfig) -> str:
    """`lstm-d0.2-s1`: the folder name says the architecture, the dropout and the seed."""
    return f"{config.model.lower()}-d{config.dropout:g}-s{config.seed}"


def sweep_configs(base: TrainConfig, dropouts: Sequence[float],
                  seeds: Sequence[int]) -> list[TrainConfig]:
    """Every (dropout, seed), dropout first; all are checked before any training starts."""
    for flag, values in (("--dropout", dropouts), ("--seed", seeds)):
        if not values:
            raise ReportgenError(f"{flag} needs at least one value")
        repeated = sorted({value for value in values if list(values).count(value) > 1})
        if repeated:
            raise ReportgenError(f"{flag} lists {', '.join(f'{v:g}' for v in repeated)} more "
                                 "than once; give each value once")
    configs = [replace(base, dropout=float(dropout), seed=int(seed))
               for dropout, seed in product(dropouts, seeds)]
    for config in configs:
        config.validate()
    return configs


def describe_failure(error: Exception) -> str:
    """One line: our own messages as they are, anything else with its type."""
    if isinstance(error, ReportgenError):
        return str(error)
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def train_sweep(data: Path, out: Path, base: TrainConfig, dropouts: Sequence[float],
                seeds: Sequence[int], quiet: bool = False,
                progress: bool | None = None) -> SweepResult:
    """Train one model per (dropout, seed) into `out/<run_name>/`; failures do not stop it."""
    data, out = Path(data), Path(out)
    configs = sweep_configs(base, dropouts, seeds)
    vocabulary_from_folder(data)  # a missing or incomplete folder fails once, not once per run
    if out.exists() and not out.is_dir():
        raise ReportgenError(f"{out}: exists and is not a folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    sweep = SweepResult(out, [SweepRun(run_name(c), c, out / run_name(c)) for c in configs])
    for index, run in enumerate(sweep.runs, start=1):
        prefix = f"[{index}/{len(sweep.runs)}] {run.name}"
        note(f"{prefix}: training, dropout {run.config.dropout:g}, seed {run.config.seed}",
             not quiet)
        try:
            run.result = train(data, run.folder, run.config, progress=progress)
        except Exception as error:  # noqa: BLE001  (recorded in the table; the sweep goes on)
            run.error = describe_failure(error)
            note(f"{prefix}: failed: {run.error}", not quiet)
        else:
            note(f"{prefix}: valid perplexity {run.result.valid_perplexity:.2f}, test "
                 f"{run.result.test_perplexity:.2f}, {run.result.seconds:.0f} s", not quiet)
        neutralise_formulas(sweep.to_frame()).to_csv(out / SWEEP_TABLE, index=False,
                                                     float_format="%.6g")
    return sweep
