"""The neurons section: `neurons.html`, one page per top neuron, and `data/neurons.csv`.

`neurons.html` shows, for each layer and state, the average distribution, the KL scatter (a
click on a point opens that neuron's page), the ranking table of the top neurons and the
near-zero neurons apart. Each top neuron gets `neuron/L{layer}-{state}-{neuron:04d}.html`: its
histogram over the layer's average, token heatmaps of the excerpts where its value is highest
and lowest, its top contexts and its AUROC for each feature.

Pages stay light: the KL scatter holds one point per neuron, and per-token data reaches a page
only for the excerpts and contexts of that page's own neuron.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.concepts import ConceptResult, NeuronConcepts
from reportgen.analysis.distributions import NeuronStats
from reportgen.analysis.divergences import RANK_BY_TITLES, Stability
from reportgen.analysis.paged_units import PagedUnits
from reportgen.capture.core import StateKey, state_name
from reportgen.csv_safety import neutralise_formulas
from reportgen.render.heatmap import activation_legend
from reportgen.render.pages import (
    ChartSpec,
    Page,
    Section,
    SiteOptions,
    page_spec,
    unvalidated_spec,
)
from reportgen.render.pages.unit_contexts import excerpts, top_contexts
from reportgen.render.pages.unit_dynamics import unit_dynamics, with_dynamics_columns
from reportgen.render.pages.unit_effects import effect_charts, effect_columns, unit_effects
from reportgen.render.pages.unit_matches import unit_matches
from reportgen.render.pages.unit_number import unit_number

PAGE = "neurons.html"
OUTSIDE_SHOWN = 0.01  # a unit's page states its share outside the interval from this share up


def section(report: ModelReport) -> Section | None:
    if report.distributions is None:
        return None
    return Section("neurons", "Neurons", PAGE,
                   "Each neuron's distribution against its layer's average, ranked by KL "
                   "divergence, with concept labels and a page for each top neuron.")


def neuron_page_path(key: StateKey, neuron: int) -> str:
    """`neuron/L1-h-0042.html`, relative to the model folder."""
    return f"neuron/{state_name(key)}-{neuron:04d}.html"


@dataclass(frozen=True)
class RankingRow:
    """One row of a ranking table; floats may be NaN, which the template shows as a dash."""

    rank: int
    neuron: int
    href: str
    kl_p_q: float
    kl_q_p: float
    js: float
    score: float
    label: str
    label_auroc: float
    labels: str  # every label as `feature:auroc`, strongest first
    mean: float
    mean_abs: float
    share_outside: float  # of the neuron's values, in the overflow slots


@dataclass(frozen=True)
class NearZeroNeuron:
    neuron: int
    frac_near_zero: float


@dataclass(frozen=True)
class StateSummary:
    """What `neurons.html` shows for one layer and state."""

    name: str  # "L1-h", also the anchor
    state: str
    interval: tuple[float, float]
    interval_source: str  # how the interval was chosen, in words
    share_outside: float
    mean_abs_activation: float
    n_neurons: int
    rank_by: str
    kl_smoothing: float
    stability: Stability
    rows: list[RankingRow]
    near_zero: list[NearZeroNeuron]
    average_chart: ChartSpec
    kl_chart: ChartSpec

    @property
    def near_zero_share(self) -> float:
        return len(self.near_zero) / self.n_neurons if self.n_neurons else 0.0


@dataclass(frozen=True)
class FeatureAuroc:
    feature: str
    description: str
    auroc: float
    within: float  # NaN where undefined
    word_decided: bool
    is_label: bool


@dataclass(frozen=True)
class NeighbourLink:
    href: str
    text: str


def paged_of(report: ModelReport) -> PagedUnits:
    """The units that get a page, as `analysis.paged_units` decided them for the report."""
    assert report.paged is not None, "the site decides the paged units of a report built by hand"
    return report.paged


def concepts_of(report: ModelReport, key: StateKey) -> NeuronConcepts | None:
    if report.concepts is None or key not in report.concepts.states:
        return None
    return report.concepts.states[key]


def ranking_rows(stats: NeuronStats, concepts: NeuronConcepts | None,
                 neurons: list[int]) -> list[RankingRow]:
    rows = []
    for neuron in neurons:
        rows.append(RankingRow(
            rank=int(stats.rank[neuron]),
            neuron=neuron,
            href=neuron_page_path(stats.key, neuron),
            kl_p_q=float(stats.kl_p_q[neuron]),
            kl_q_p=float(stats.kl_q_p[neuron]),
            js=float(stats.js[neuron]),
            score=float(stats.score[neuron]),
            label=concepts.label[neuron] if concepts else "",
            label_auroc=float(concepts.label_auroc[neuron]) if concepts else math.nan,
            labels=concepts.labels_text(neuron) if concepts else "",
            mean=float(stats.mean[neuron]),
            mean_abs=float(stats.mean_abs[neuron]),
            share_outside=float(stats.neuron_share_outside[neuron]),
        ))
    return rows


def interval_source(stats: NeuronStats, cell_interval_given: bool) -> str:
    """How the histogram interval was chosen, in words."""
    state = stats.key[1]
    if state != "c" and stats.bounded:
        return "h is bounded by tanh"
    if state == "c" and cell_interval_given:
        return "set by --cell-interval"
    unbounded = "" if state == "c" else "h of a ReLU RNN has no bound: "
    return f"{unbounded}the 99.9th percentile of |{state}| in this layer, rounded up to 0.01"


def linked_kl_chart(stats: NeuronStats, concepts: ConceptResult | None,
                    pages: list[int]) -> alt.Chart:
    """The KL scatter whose points open the neuron's page, for neurons that have one."""
    chart = stats.kl_chart(concepts)
    hrefs = {neuron: neuron_page_path(stats.key, neuron) for neuron in pages}
    records = [dict(record, href=hrefs.get(record["neuron"])) for record in chart.data.values]
    return chart.properties(data=alt.Data(values=records)).encode(href="href:N")


def cell_interval_given(report: ModelReport) -> bool:
    """Whether the user set the cell interval, as `build_report` records its options."""
    neurons = report.options.get("neurons")
    return isinstance(neurons, dict) and neurons.get("cell_interval") is not None


def state_summary(report: ModelReport, key: StateKey, top: list[int],
                  pages: list[int]) -> StateSummary:
    assert report.distributions is not None
    stats = report.distributions.states[key]
    concepts = concepts_of(report, key)
    name = state_name(key)
    near_zero = [NearZeroNeuron(int(n), float(stats.frac_near_zero[n]))
                 for n in np.flatnonzero(stats.near_zero)]
    return StateSummary(
        name=name,
        state=key[1],
        interval=stats.interval,
        interval_source=interval_source(stats, cell_interval_given(report)),
        share_outside=stats.share_outside,
        mean_abs_activation=stats.mean_abs_activation,
        n_neurons=stats.n_neurons,
        rank_by=stats.rank_by,
        kl_smoothing=stats.kl_smoothing,
        stability=stats.stability,
        rows=ranking_rows(stats, concepts, top),
        near_zero=near_zero,
        average_chart=ChartSpec(
            f"average-{name}", page_spec(stats.average_chart()),
            f"{name}: the average distribution q of its neurons, in bins of 0.01.",
            f"{name}-average"),
        kl_chart=ChartSpec(f"kl-{name}", page_spec(linked_kl_chart(stats, report.concepts, pages)),
                           f"{name}: one point per neuron; click a top neuron to open its page.",
                           f"{name}-kl"),
    )


def feature_aurocs(concepts: NeuronConcepts | None, neuron: int,
                   descriptions: dict[str, str]) -> list[FeatureAuroc]:
    """Each feature's figures for one neuron, its labels first (strongest first), then the
    rest in feature order."""
    if concepts is None:
        return []
    labels = [feature for feature, _ in concepts.labels[neuron]]
    order = [concepts.features.index(f) for f in labels]
    order += [i for i, f in enumerate(concepts.features) if f not in labels]
    return [FeatureAuroc(concepts.features[i], descriptions.get(concepts.features[i], ""),
                         float(concepts.auroc[neuron, i]), float(concepts.within[neuron, i]),
                         bool(concepts.word_decided[i]), concepts.features[i] in labels)
            for i in order]


def neighbour_links(key: StateKey, neurons: list[int],
                    index: int) -> dict[str, NeighbourLink | None]:
    """Links to the neurons ranked just above and below, from inside `neuron/`."""
    def link(at: int) -> NeighbourLink | None:
        if not 0 <= at < len(neurons):
            return None
        return NeighbourLink("../" + neuron_page_path(key, neurons[at]), f"neuron {neurons[at]}")
    return {"previous": link(index - 1), "next": link(index + 1)}


def neuron_page(report: ModelReport, key: StateKey, neurons: list[int], index: int,
                figures: bool = True) -> Page:
    """One unit's page; `figures` False leaves its charts out of img/. Only the top units by KL
    get figures, and only with `--all-figures`: they are most of img/ (34 of 40 MB on a real
    2x200 model), and the main charts are what papers take."""
    assert report.distributions is not None
    stats = report.distributions.states[key]
    concepts = concepts_of(report, key)
    neuron = neurons[index]
    name = state_name(key)
    label = f"{name} neuron {neuron}"
    values = report.capture.states[key][:, neuron].astype(np.float32)  # (T,)
    scale = float(np.max(np.abs(values)))
    tokens = report.capture.tokens
    figure = f"{name}-{neuron:04d}"  # the stem of this neuron's figures under img/
    charts = [ChartSpec("histogram", unvalidated_spec(lambda: stats.neuron_chart(neuron)),
                        f"The share of {label}'s values in each bin, over the average of {name}.",
                        f"{figure}-histogram" if figures else "")]
    if concepts is not None:
        assert report.concepts is not None
        threshold = report.concepts.threshold
        charts.append(ChartSpec("auroc", unvalidated_spec(lambda: concepts.chart(neuron, threshold)),
                                "AUROC of the neuron's activation for each token feature; "
                                "0.5 is chance, below 0.5 the neuron is low on the feature. "
                                "Black ticks: the within-word AUROC; dashed: the label "
                                "thresholds.",
                                f"{figure}-auroc" if figures else ""))
    dynamics = unit_dynamics(report, key, neuron, figure if figures else "", neuron_page_path)
    charts += dynamics.charts
    row = ranking_rows(stats, concepts, [neuron])[0]
    contexts = top_contexts(tokens, values)
    effects = unit_effects(report, key, neuron, [context.position for context in contexts])
    charts += effect_charts(effects, label, figure if figures else "")
    return Page(
        path=neuron_page_path(key, neuron),
        template="neuron.html",
        title=label,
        section="neurons",
        context={
            "name": name,
            "neuron": neuron,
            "row": row,
            "std": float(stats.std[neuron]),
            "frac_near_zero": float(stats.frac_near_zero[neuron]),
            "n_neurons": stats.n_neurons,
            "rank_by_title": RANK_BY_TITLES[stats.rank_by],
            "outside_shown": OUTSIDE_SHOWN,
            "interval": stats.interval,
            "scale": scale,
            "scale_legend": activation_legend(scale),
            "high_excerpts": excerpts(tokens, values, True, scale),
            "low_excerpts": excerpts(tokens, values, False, scale),
            "contexts": contexts,
            "effects": effects,
            "aurocs": feature_aurocs(concepts, neuron, (report.concepts.descriptions or {})
                                     if report.concepts is not None else {}),
            "threshold": report.concepts.threshold if report.concepts is not None else None,
            "within_threshold": (report.concepts.within_threshold
                                 if report.concepts is not None else None),
            "dynamics": dynamics,
            "matches": unit_matches(report, key, neuron, neuron_page_path),
            "number_unit": unit_number(report, key, neuron),
            "back": f"../{PAGE}",
            **neighbour_links(key, neurons, index),
        },
        charts=charts,
    )


def pages(report: ModelReport, options: SiteOptions) -> list[Page]:
    top, paged = paged_of(report).top, paged_of(report).units
    summaries = [state_summary(report, key, top[key], paged[key]) for key in top]
    overview = Page(
        path=PAGE,
        template="neurons.html",
        title="Neurons",
        section="neurons",
        context={
            "states": summaries,
            "top_neurons": paged_of(report).top_n,
            "rank_by_titles": RANK_BY_TITLES,
            "outside_shown": OUTSIDE_SHOWN,
        },
        charts=[chart for s in summaries for chart in (s.average_chart, s.kl_chart)],
    )
    neuron_pages = [
        neuron_page(report, key, neurons, index,
                    figures=options.all_figures and neurons[index] in top[key])
        for key, neurons in paged.items()
        for index in range(len(neurons))
    ]
    return [overview, *neuron_pages]


def neurons_frame(report: ModelReport) -> pd.DataFrame:
    """neurons.csv: the distribution columns, then every label and each feature's AUROC and
    within-word AUROC."""
    assert report.distributions is not None
    frame = report.distributions.to_frame(report.concepts)
    frame["near_zero"] = frame["near_zero"].astype(int)  # 0/1, as the features of tokens.csv
    if report.concepts is not None:
        concept_columns = report.concepts.to_frame().drop(columns=["label", "label_auroc"])
        frame = frame.merge(concept_columns, on=["layer", "state", "neuron"], how="left",
                            validate="one_to_one")
    return with_dynamics_columns(effect_columns(frame, report), report)


def export(report: ModelReport, data: Path) -> None:
    """neurons.csv: DESIGN.md section 5's columns, one row per layer, state and neuron."""
    neutralise_formulas(neurons_frame(report)).to_csv(data / "neurons.csv", index=False,
                                                      float_format="%.8g")
