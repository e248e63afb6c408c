"""The comparison page of several models: `index.html` at the top of the site, and
`data/comparison.csv`; with `Relations`, also the units and representations across models
(`reportgen.render.pages.alignment`).

The page shows the charts of `Comparison.charts()` against dropout, the failed models, and two
tables: one row per model, and one per model and layer-state; each model's name links to its
own report in `<name>/index.html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.analysis.alignment import AlignmentResult
from reportgen.analysis.comparison import Comparison
from reportgen.analysis.distributions import NEAR_ZERO_SHARE
from reportgen.analysis.histograms import NEAR_ZERO_BOUND
from reportgen.analysis.similarity import SimilarityResult
from reportgen.analysis.state_sample import SAMPLE_POSITIONS
from reportgen.capture.core import state_name
from reportgen.csv_safety import neutralise_formulas
from reportgen.render.pages import ChartSpec, Page, page_spec
from reportgen.render.pages import alignment as across

PAGE = "index.html"
TABLE_NAME = "comparison.csv"


@dataclass
class Relations:
    """The models' units and representations compared over their sampled positions."""

    alignment: AlignmentResult
    similarity: SimilarityResult
    n_positions: int


def captions(comparison: Comparison) -> dict[str, str]:
    spread = (" The bar spans the lowest to the highest seed." if comparison.several_seeds
              else "")
    mean = " The line joins the means over seeds at each dropout." + spread
    return {
        "perplexity": "Perplexity of each model on the analysed text, one point per model."
                      + mean,
        "mean-abs": "Mean |activation| over every position and neuron of each layer and state."
                    + mean,
        "near-zero": f"Share of neurons with more than {NEAR_ZERO_SHARE:.0%} of their values "
                     f"within ±{NEAR_ZERO_BOUND}." + mean,
        "kl-scores": "KL(p||q) + KL(q||p) of each neuron against its layer's average: the box "
                     "spans the first to the third quartile, the white tick is the median and "
                     "the whiskers reach the lowest and highest score.",
        "agreement": "Accuracy of each model on each task of the built-in number-agreement "
                     "suite, all its conditions together.",
    }


def model_rows(comparison: Comparison) -> list[dict[str, Any]]:
    return [{
        "name": m.name, "href": m.href, "dropout": m.dropout, "seed": m.seed,
        "perplexity": m.perplexity, "valid_perplexity": m.valid_perplexity,
        "test_perplexity": m.test_perplexity, "n_tokens": m.n_tokens,
    } for m in comparison.models]


def state_rows(comparison: Comparison) -> list[dict[str, Any]]:
    rows = []
    for m in comparison.models:
        for figures in m.states:
            kl = figures.kl_summary()
            rows.append({
                "name": m.name, "href": m.href, "dropout": m.dropout, "seed": m.seed,
                "state": state_name(figures.key), "n_neurons": figures.n_neurons,
                "mean_abs": figures.mean_abs, "n_near_zero": figures.n_near_zero,
                "near_zero_share": figures.near_zero_share, "kl_q1": kl["q1"],
                "kl_median": kl["median"], "kl_q3": kl["q3"],
            })
    return rows


def page(comparison: Comparison, title: str, folder: Path | None = None,
         relations: Relations | None = None, without_states: Sequence[str] = ()) -> Page:
    """The comparison page; `folder` is the site, whose model folders hold the unit pages;
    `without_states` names the models rendered without --comparison-positions."""
    texts = captions(comparison)
    charts = [ChartSpec(chart_id, page_spec(chart), texts[chart_id], f"comparison-{chart_id}")
              for chart_id, chart in comparison.charts().items()]
    first = comparison.models[0]
    context: dict[str, Any] = {"relations": relations is not None,
                               "without_states": list(without_states),
                               "sample_positions": SAMPLE_POSITIONS}
    if relations is not None:
        keys = comparison.state_keys
        charts += across.charts(relations.alignment, relations.similarity, keys)
        context.update(across.context(relations.alignment, relations.similarity, keys,
                                      unit_pages(comparison, folder), relations.n_positions))
    return Page(PAGE, "comparison.html", title, "comparison", {
        "title": title,
        "text_name": first.text_name,
        "n_tokens": first.n_tokens,
        "models": model_rows(comparison),
        "states": state_rows(comparison),
        "failures": comparison.failures,
        "without_dropout": comparison.without_dropout,
        "charts_by_id": {chart.id: chart for chart in charts},
        "table_name": TABLE_NAME,
        **context,
    }, charts)


def unit_pages(comparison: Comparison, folder: Path | None) -> across.UnitPages:
    if folder is None:
        return set()
    sizes = {(m.name, s.key): s.n_neurons for m in comparison.models for s in m.states}
    return across.unit_pages_in(folder, [m.name for m in comparison.models],
                                comparison.state_keys, sizes)


def pages(comparison: Comparison, title: str, folder: Path | None = None,
          relations: Relations | None = None, without_states: Sequence[str] = ()) -> list[Page]:
    """The comparison page first, then the alignment page of each model and state."""
    found = [page(comparison, title, folder, relations, without_states)]
    if relations is not None:
        found += across.alignment_pages(relations.alignment, comparison.state_keys,
                                        unit_pages(comparison, folder), title)
    return found


def export(comparison: Comparison, data: Path, relations: Relations | None = None) -> None:
    """comparison.csv: one row per model and layer-state, see `COMPARISON_COLUMNS`; with the
    relations, alignment.csv and similarity.csv."""
    neutralise_formulas(comparison.table).to_csv(data / TABLE_NAME, index=False,
                                                 float_format="%.8g")
    if relations is not None:
        across.export(relations.alignment, relations.similarity, data)
