"""What every report keeps so that it can be compared with others later, without its model:
`data/comparable/` in the model's folder.

- `figures.json`: the model's `ModelFigures` (settings, perplexity, the hashes of its text and
  vocabulary, and per layer and state the figures of the comparison table, each unit's KL score
  and labels). Floats are written by `json` as their shortest repr, which reads back to the
  same float64, so a comparison built from the file equals one built in memory.
- `positions.npy`: the sampled positions, (n,) int64.
- `L1-h.npy`, `L1-c.npy`, ...: the states at those positions, (n, H) float16.

`reportgen compare` reads these from finished report folders, and the multi-model `reportgen
report` reads them back from the folders it has just written, so both build the comparison
from the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reportgen.analysis.bundle import ModelReport, ModelSummary, json_safe
from reportgen.analysis.comparison import (
    PICKLE_FORMAT,
    Comparison,
    ModelFailure,
    ModelFigures,
    StateFigures,
    compare,
)
from reportgen.analysis.state_sample import SAMPLE_POSITIONS, StateSample, sample_states
from reportgen.capture.core import StateKey, state_name
from reportgen.errors import ReportgenError
from reportgen.inputs.agreement_suites import BUILT_IN
from reportgen.inputs.corpus import vocabulary_sha256

FOLDER = "comparable"  # under the model folder's data/
FIGURES = "figures.json"
POSITIONS = "positions.npy"
FORMAT = 1  # raised when the files change meaning; older reports are refused, not misread


@dataclass
class ComparableReport:
    """One finished report as the comparison sees it."""

    folder: Path  # the model's report folder
    figures: ModelFigures
    sample: StateSample | None  # None: rendered without --comparison-positions


def training_settings(summary: ModelSummary) -> tuple[float | None, int | None]:
    """(dropout, seed) as far as the report knows them; see the module docstring."""
    metadata = summary.metadata
    dropout = metadata.get("dropout")
    if dropout is None and summary.checkpoint_format == PICKLE_FORMAT:
        dropout = summary.hyperparameters.get("dropout")
    seed = metadata.get("seed")
    return (None if dropout is None else float(dropout)), (None if seed is None else int(seed))


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def unit_labels(report: ModelReport, key: StateKey) -> tuple[tuple[str, ...], ...]:
    """Each unit's concept labels (feature names, strongest first), to follow them across
    models; () when the report has no concepts."""
    if report.concepts is None or key not in report.concepts.states:
        return ()
    return tuple(tuple(feature for feature, _ in labels)
                 for labels in report.concepts.states[key].labels)


def figures_of(report: ModelReport, href: str = "") -> ModelFigures:
    """Reduce a model's report to what the comparison needs; it must have its distributions."""
    if report.distributions is None:
        raise ReportgenError(
            f"model {report.summary.name}: its report has no neuron distributions, which the "
            "comparison needs; run analyse_distributions on its capture"
        )
    dropout, seed = training_settings(report.summary)
    states = [
        StateFigures(key, stats.n_neurons, stats.mean_abs_activation,
                     int(stats.near_zero.sum()), stats.kl_p_q + stats.kl_q_p,
                     unit_labels(report, key))
        for key, stats in report.distributions.states.items()
    ]
    summary = report.summary
    return ModelFigures(
        name=summary.name, dropout=dropout, seed=seed, perplexity=summary.perplexity,
        n_tokens=summary.n_tokens, text_name=summary.text_name,
        text_sha256=summary.text_sha256,
        vocabulary_sha256=vocabulary_sha256(report.capture.vocabulary),
        vocabulary_size=summary.vocabulary_size,
        valid_perplexity=optional_float(summary.metadata.get("valid_perplexity")),
        test_perplexity=optional_float(summary.metadata.get("test_perplexity")),
        states=states, href=href, agreement=task_accuracies(report),
    )


def task_accuracies(report: ModelReport) -> dict[str, float]:
    """Accuracy of each task of the built-in agreement suite, over all its conditions."""
    if report.agreement is None:
        return {}
    totals: dict[str, list[int]] = {}
    for score in report.agreement.scores:
        if score.suite == BUILT_IN:
            total = totals.setdefault(score.task, [0, 0])
            total[0] += score.correct
            total[1] += score.n
    return {task: correct / n for task, (correct, n) in totals.items() if n}


def compare_models(reports: Sequence[ModelReport | ModelFigures],
                   failures: Sequence[ModelFailure] = ()) -> Comparison:
    """`reportgen.compare`: the comparison of reports held in memory (or of their figures)."""
    return compare([item if isinstance(item, ModelFigures) else figures_of(item)
                    for item in reports], failures)


def figures_payload(figures: ModelFigures) -> dict[str, Any]:
    payload = asdict(figures)
    payload.pop("href")
    payload["states"] = [{
        "layer": s.key[0], "state": s.key[1], "n_neurons": s.n_neurons, "mean_abs": s.mean_abs,
        "n_near_zero": s.n_near_zero, "kl_scores": s.kl_scores.tolist(),
        "labels": [list(labels) for labels in s.labels],
    } for s in figures.states]
    return {"format": FORMAT, **payload}


def export(report: ModelReport, data: Path, positions: int = SAMPLE_POSITIONS) -> None:
    """Write `data/comparable/` for a report that has its distributions (every CLI report):
    its figures, and the states at `positions` sampled positions unless that is 0."""
    if report.distributions is None:
        return
    folder = data / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FIGURES).write_text(json.dumps(json_safe(figures_payload(figures_of(report))),
                                             indent=1, sort_keys=True, allow_nan=False) + "\n",
                                  encoding="utf-8")
    if positions == 0:
        return
    sample = sample_states(report.capture, positions)
    np.save(folder / POSITIONS, sample.positions)
    for key, values in sample.states.items():
        np.save(folder / f"{state_name(key)}.npy", values)


def float_or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def figures_from(payload: dict[str, Any], href: str) -> ModelFigures:
    states = [StateFigures(
        key=(int(s["layer"]), str(s["state"])), n_neurons=int(s["n_neurons"]),
        mean_abs=float_or_nan(s["mean_abs"]), n_near_zero=int(s["n_near_zero"]),
        kl_scores=np.array([float_or_nan(v) for v in s["kl_scores"]], dtype=np.float64),
        labels=tuple(tuple(labels) for labels in s["labels"]),
    ) for s in payload["states"]]
    fields = {key: value for key, value in payload.items() if key not in ("format", "states")}
    fields["perplexity"] = float_or_nan(fields["perplexity"])
    return ModelFigures(**fields, states=states, href=href)


def read_comparable(folder: Path, href: str = "") -> ComparableReport:
    """Read `folder/data/comparable/`; a folder that is not a report, or a report without
    these files, is one clear error. A report rendered without --comparison-positions keeps its
    figures but no states: it compares, but its units cannot be aligned."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportgenError(f"{folder}: no such folder; give the folders `reportgen report` "
                             "wrote")
    if not (folder / "data" / "report.json").is_file():
        raise ReportgenError(f"{folder}: not a reportgen report folder (no data/report.json); "
                             "give the folders `reportgen report` wrote, one per model")
    stored = folder / "data" / FOLDER
    if not (stored / FIGURES).is_file():
        raise ReportgenError(f"{folder}: this report has no data/{FOLDER}/ (it was rendered by "
                             "an older reportgen); render it again with `reportgen report`")
    try:
        payload = json.loads((stored / FIGURES).read_text(encoding="utf-8"))
        if payload.get("format") != FORMAT:
            raise ReportgenError(f"{folder}: data/{FOLDER}/ is in format "
                                 f"{payload.get('format')}, this reportgen reads {FORMAT}; "
                                 "render the report again")
        figures = figures_from(payload, href)
        if not (stored / POSITIONS).is_file():
            return ComparableReport(folder, figures, None)
        positions = np.load(stored / POSITIONS)
        states = {s.key: np.load(stored / f"{state_name(s.key)}.npy") for s in figures.states}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReportgenError(f"{folder}: data/{FOLDER}/ is damaged ({type(error).__name__}: "
                             f"{error}); render the report again") from None
    return ComparableReport(folder, figures, StateSample(positions, states))
