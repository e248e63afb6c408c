"""Comparison: the figures of several models read on the same text, side by side (DESIGN.md 1).

The thesis compared LSTMs that differed only in dropout and seed: perplexity, and mean
|activation| of each layer and state, against dropout. This module reduces each model's report
to a few figures per layer and state (`ModelFigures`, a few kilobytes, so a sweep of large models
never holds more than one capture) and lines them up in one table, `Comparison.table`, which is
`comparison.csv`, with the records of its charts against dropout, which `reportgen.charts.dropout`
draws.

Definitions, and why:
- perplexity: exp of the mean negative log p(next token) over the analysed text, as the model's
  own report gives it; it is the same text for every model, so the figures are comparable.
- mean_abs: mean |activation| over every position and neuron of a layer and state (the
  distributions analysis' `mean_abs_activation`).
- near-zero neurons: those the distributions analysis flags (more than 90% of values within
  [-0.01, 0.01]); near_zero_share is their count over the layer's neurons.
- KL score: KL(p||q) + KL(q||p) of each neuron against its layer's average, whatever the report
  ranked by, so that the models' scores mean the same. Every neuron has one, its values outside
  the interval counted in the overflow bins; near-zero neurons are kept, since how far they are
  from the average is part of what dropout changes. The box plot is drawn from quartiles
  computed here (linear interpolation, `np.quantile`), with whiskers to the lowest and highest
  score, so the page carries five numbers per model and state instead of every neuron.
- dropout and seed: given by the user, else from the checkpoint's metadata (reportgen's own
  checkpoints store both), else dropout from a pytorch/examples pickle's `drop.p` (its seed is
  not stored); a bare state dict says neither. A model whose dropout is unknown is in the table
  and the KL box plot but not on the charts against dropout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from reportgen.capture.core import StateKey, state_name
from reportgen.charts import (
    agreement_against_dropout_chart,
    finite_or_none,
    kl_score_boxes_chart,
    mean_abs_against_dropout_chart,
    near_zero_against_dropout_chart,
    perplexity_against_dropout_chart,
)
from reportgen.errors import ReportgenError

COMPARISON_COLUMNS = (
    "model", "dropout", "seed", "perplexity", "n_tokens", "valid_perplexity", "test_perplexity",
    "layer", "state", "n_neurons", "mean_abs", "near_zero_share", "n_near_zero",
    "kl_score_min", "kl_score_q1", "kl_score_median", "kl_score_q3", "kl_score_max",
    "kl_score_mean",
)
PICKLE_FORMAT = "pytorch-examples pickle"


@dataclass(frozen=True)
class StateFigures:
    """What the comparison keeps of one layer and state of one model."""

    key: StateKey
    n_neurons: int
    mean_abs: float  # mean |activation| over all positions and neurons
    n_near_zero: int
    kl_scores: np.ndarray  # (H,) float64 KL(p||q) + KL(q||p) of add-k smoothed counts
    labels: tuple[tuple[str, ...], ...] = ()  # H tuples of feature names, strongest first; () unknown

    @property
    def near_zero_share(self) -> float:
        return self.n_near_zero / self.n_neurons if self.n_neurons else math.nan

    def kl_summary(self) -> dict[str, float]:
        """The box plot's five numbers and the mean, over the neurons that have a score."""
        scores = self.kl_scores[np.isfinite(self.kl_scores)]
        if scores.size == 0:
            return {name: math.nan for name in ("min", "q1", "median", "q3", "max", "mean")}
        q1, median, q3 = np.quantile(scores, [0.25, 0.5, 0.75])
        return {"min": float(scores.min()), "q1": float(q1), "median": float(median),
                "q3": float(q3), "max": float(scores.max()), "mean": float(scores.mean())}


@dataclass(frozen=True)
class ModelFigures:
    """One model's figures for the comparison, without its capture."""

    name: str
    dropout: float | None
    seed: int | None
    perplexity: float  # on the analysed text
    n_tokens: int
    text_name: str
    text_sha256: str
    vocabulary_sha256: str
    vocabulary_size: int
    valid_perplexity: float | None  # from training, when the checkpoint records it
    test_perplexity: float | None
    states: list[StateFigures]
    href: str = ""  # the model's report, relative to the comparison page; "" for none
    agreement: dict[str, float] = field(default_factory=dict)  # built-in task -> accuracy


@dataclass(frozen=True)
class ModelFailure:
    """A model that could not be reported, and why, for the comparison page."""

    name: str
    checkpoint: str
    message: str


def sort_key(model: ModelFigures) -> tuple:
    """Dropout, then seed, then name; unknown settings last."""
    return (model.dropout is None, model.dropout or 0.0, model.seed is None, model.seed or 0,
            model.name)


def seed_label(seed: int | None) -> str:
    return "unknown" if seed is None else str(seed)


@dataclass
class Comparison:
    """The models of a comparison in plotting order, and those that failed."""

    models: list[ModelFigures]
    failures: list[ModelFailure] = field(default_factory=list)

    @property
    def state_keys(self) -> list[StateKey]:
        """Every layer and state any model has, in report order."""
        keys = {figures.key for model in self.models for figures in model.states}
        return sorted(keys, key=lambda key: (key[0], key[1] != "h"))

    @property
    def state_names(self) -> list[str]:
        return [state_name(key) for key in self.state_keys]

    @property
    def several_seeds(self) -> bool:
        """Whether some dropout was trained with more than one seed: then the spread is drawn."""
        seen: dict[float, set[int | None]] = {}
        for model in self.models:
            if model.dropout is not None:
                seen.setdefault(model.dropout, set()).add(model.seed)
        return any(len(seeds) > 1 for seeds in seen.values())

    @property
    def without_dropout(self) -> list[str]:
        return [model.name for model in self.models if model.dropout is None]

    @property
    def table(self) -> pd.DataFrame:
        """comparison.csv: one row per model and layer-state, `COMPARISON_COLUMNS`."""
        rows = []
        for m in self.models:
            for figures in m.states:
                kl = figures.kl_summary()
                rows.append({
                    "model": m.name, "dropout": m.dropout, "seed": m.seed,
                    "perplexity": m.perplexity, "n_tokens": m.n_tokens,
                    "valid_perplexity": m.valid_perplexity, "test_perplexity": m.test_perplexity,
                    "layer": figures.key[0], "state": figures.key[1],
                    "n_neurons": figures.n_neurons, "mean_abs": figures.mean_abs,
                    "near_zero_share": figures.near_zero_share,
                    "n_near_zero": figures.n_near_zero,
                    **{f"kl_score_{name}": value for name, value in kl.items()},
                })
        return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)).astype(
            {"dropout": "float64", "seed": "Int64", "valid_perplexity": "float64",
             "test_perplexity": "float64"})

    def perplexity_records(self) -> list[dict[str, Any]]:
        """One record per model whose dropout is known, with the figures over its seeds."""
        records = [{"model": m.name, "dropout": m.dropout, "seed": seed_label(m.seed),
                    "perplexity": finite_or_none(m.perplexity)}
                   for m in self.models if m.dropout is not None]
        return with_seed_spread(records, ["perplexity"])

    def state_records(self) -> list[dict[str, Any]]:
        """One record per model and layer-state, for the charts."""
        records = []
        for m in self.models:
            for figures in m.states:
                kl = figures.kl_summary()
                records.append({
                    "model": m.name, "dropout": m.dropout, "seed": seed_label(m.seed),
                    "state": state_name(figures.key),
                    "mean_abs": finite_or_none(figures.mean_abs),
                    "near_zero_share": finite_or_none(figures.near_zero_share),
                    **{f"kl_{name}": finite_or_none(value) for name, value in kl.items()},
                })
        return records

    def perplexity_chart(self) -> alt.LayerChart:
        return perplexity_against_dropout_chart(self.perplexity_records(), self.several_seeds)

    def mean_abs_chart(self) -> alt.FacetChart:
        return mean_abs_against_dropout_chart(self.dropout_state_records(), self.state_names,
                                              self.several_seeds)

    def near_zero_chart(self) -> alt.FacetChart:
        return near_zero_against_dropout_chart(self.dropout_state_records(), self.state_names,
                                               self.several_seeds)

    def kl_chart(self) -> alt.FacetChart:
        return kl_score_boxes_chart(self.state_records(), [m.name for m in self.models],
                                    self.state_names)

    def dropout_state_records(self) -> list[dict[str, Any]]:
        """The state records of models whose dropout is known, with figures over seeds."""
        records = [record for record in self.state_records() if record["dropout"] is not None]
        return with_seed_spread(records, ["mean_abs", "near_zero_share"])

    def agreement_records(self) -> list[dict[str, Any]]:
        """One record per model whose dropout is known and built-in agreement task."""
        return [{"model": m.name, "dropout": m.dropout, "task": task, "accuracy": accuracy}
                for m in self.models if m.dropout is not None
                for task, accuracy in m.agreement.items()]

    def charts(self) -> dict[str, alt.TopLevelMixin]:
        """Every chart of the comparison page by id, in page order; in a notebook, show one."""
        charts = {
            "perplexity": self.perplexity_chart(),
            "mean-abs": self.mean_abs_chart(),
            "near-zero": self.near_zero_chart(),
            "kl-scores": self.kl_chart(),
        }
        if self.agreement_records():
            charts["agreement"] = agreement_against_dropout_chart(self.agreement_records())
        return charts


def with_seed_spread(records: list[dict[str, Any]], values: list[str]) -> list[dict[str, Any]]:
    """Add `<value>_mean`, `_low` and `_high` over the seeds of each dropout (and state) to
    every record of the group.

    Computed here rather than by Vega-Lite aggregates, so the numbers a chart draws are in its
    data, where an export or a test can read them.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["dropout"], record.get("state")), []).append(record)
    for group in groups.values():
        for value in values:
            numbers = [r[value] for r in group if r[value] is not None]
            spread = {f"{value}_mean": float(np.mean(numbers)) if numbers else None,
                      f"{value}_low": min(numbers) if numbers else None,
                      f"{value}_high": max(numbers) if numbers else None}
            for record in group:
                record.update(spread)
    return records


def check_comparable(models: Sequence[ModelFigures]) -> None:
    """Models compare only on the same text with the same vocabulary, under distinct names."""
    seen: dict[str, ModelFigures] = {}
    for model in models:
        if model.name in seen:
            raise ReportgenError(f"two models are named {model.name!r}; give each its own name")
        seen[model.name] = model
    first = models[0]
    for model in models[1:]:
        if model.vocabulary_sha256 != first.vocabulary_sha256:
            raise ReportgenError(
                f"models {first.name} and {model.name} have different vocabularies "
                f"({first.vocabulary_size:,} and {model.vocabulary_size:,} words); compare only "
                "models trained on the same corpus"
            )
        if (model.text_sha256, model.n_tokens) != (first.text_sha256, first.n_tokens):
            raise ReportgenError(
                f"models {first.name} and {model.name} were read on different texts "
                f"({first.n_tokens:,} and {model.n_tokens:,} tokens); analyse every model on "
                "the same text with the same --max-tokens"
            )


def compare(models: Sequence[ModelFigures],
            failures: Sequence[ModelFailure] = ()) -> Comparison:
    """Line up the figures of several models read on the same text (`render.comparable`'s
    `figures_of` makes them of a report): `.table` and `.charts()` for a notebook."""
    models = list(models)
    if not models:
        raise ReportgenError("nothing to compare: give at least one model's report")
    check_comparable(models)
    return Comparison(sorted(models, key=sort_key), list(failures))
