"""The gates section: `gates.html`, per layer a saturation scatter of each gate and a
histogram of the units' memory time constants (reportgen.analysis.gates).

Each point of a scatter opens the unit's page when it has one (its h page, else its c page).
The gate figures are also columns of neurons.csv, written by the neurons section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.gates import LayerGates
from reportgen.charts import GATE_TITLES, gate_saturation_chart, time_constant_chart
from reportgen.render.pages import ChartSpec, Page, Section, SiteOptions, page_spec
from reportgen.render.pages.neurons import neuron_page_path, paged_of

PAGE = "gates.html"
BINS_PER_DECADE = 10  # time-constant histogram bins on the log axis


def section(report: ModelReport) -> Section | None:
    if report.gates is None:
        return None
    return Section("gates", "Gates", PAGE,
                   "How often each unit's gates saturate, and how long each unit remembers.")


@dataclass(frozen=True)
class LayerSummary:
    name: str  # "L1"
    median_time_constant: float  # over every unit, +inf ones included: may itself be +inf
    median_product_time_constant: float  # of -1 / mean(ln gate), the same way
    infinite: int  # units whose gate is exactly 1: time constant +inf
    long_memory: int  # units whose time constant exceeds LONG_MEMORY tokens
    n_units: int
    saturation: ChartSpec
    time_constants: ChartSpec


LONG_MEMORY = 10.0  # tokens


def saturation_records(stats: LayerGates, hrefs: dict[int, str]) -> list[dict[str, object]]:
    return [{"neuron": unit, "gate": gate, "gate_title": GATE_TITLES.get(gate, gate),
             "left": round(float(stats.left[index, unit]), 4),
             "right": round(float(stats.right[index, unit]), 4), "href": hrefs.get(unit)}
            for index, gate in enumerate(stats.gates) for unit in range(stats.left.shape[1])]


def time_constant_records(time_constants: np.ndarray) -> list[dict[str, object]]:
    """Counts in log-spaced bins, BINS_PER_DECADE to a decade, over the positive values (H,).

    +inf (a gate of exactly 1) counts in the last bin, which then reaches "∞" in its record's
    `last` field: the longest memories stay in the chart. Without finite values the bins span
    the decade [1, 10), and the infinite ones sit in its last bin.
    """
    positive = time_constants[time_constants > 0]
    finite = positive[np.isfinite(positive)]
    infinite = int(np.count_nonzero(np.isinf(positive)))
    if positive.size == 0:
        return []
    if finite.size:
        low = np.floor(np.log10(finite.min()) * BINS_PER_DECADE) / BINS_PER_DECADE
        high = np.ceil(np.log10(finite.max()) * BINS_PER_DECADE) / BINS_PER_DECADE
    else:
        low, high = 0.0, 1.0
    edges = 10 ** np.linspace(low, high, max(1, round((high - low) * BINS_PER_DECADE)) + 1)
    counts, _ = np.histogram(finite, bins=edges)
    counts[-1] += infinite
    records = [{"start": float(a), "end": float(b), "count": int(n), "last": f"{b:.3g}"}
               for a, b, n in zip(edges[:-1], edges[1:], counts)]
    if infinite:
        records[-1]["last"] = "∞"
    return [record for record in records if record["count"]]


def unit_pages(report: ModelReport, layer: int) -> dict[int, str]:
    """Each unit of a layer that has a page -> that page, its h page first."""
    paged = paged_of(report).units
    hrefs: dict[int, str] = {}
    for state in ("c", "h"):  # h last, so it wins
        for unit in paged.get((layer, state), []):
            hrefs[unit] = neuron_page_path((layer, state), unit)
    return hrefs


def layer_summary(report: ModelReport, stats: LayerGates) -> LayerSummary:
    assert report.gates is not None
    name = f"L{stats.layer}"
    memory = report.gates.memory_gate
    saturation = gate_saturation_chart(saturation_records(stats, unit_pages(report, stats.layer)),
                                       stats.gates, name)
    histogram = time_constant_chart(time_constant_records(stats.time_constant),
                                    f"{name}: memory time constants",
                                    f"−1 / ln(mean {memory}), tokens (log scale)")
    return LayerSummary(
        name=name,
        median_time_constant=float(np.median(stats.time_constant)),
        median_product_time_constant=float(np.median(stats.product_time_constant)),
        infinite=int(np.count_nonzero(np.isinf(stats.time_constant))),
        long_memory=int(np.count_nonzero(stats.time_constant > LONG_MEMORY)),
        n_units=stats.left.shape[1],
        saturation=ChartSpec(f"saturation-{name}", page_spec(saturation),
                             f"{name}: one point per unit and gate; click a unit with a page to "
                             "open it.", f"{name}-gate-saturation"),
        time_constants=ChartSpec(f"time-constants-{name}", page_spec(histogram),
                                 f"{name}: the units' time constants, {BINS_PER_DECADE} bins "
                                 "a decade; a unit whose gate is exactly 1 (time "
                                 "constant ∞) counts in the last bin.", f"{name}-time-constants"),
    )


def pages(report: ModelReport, options: SiteOptions) -> list[Page]:
    assert report.gates is not None
    layers = [layer_summary(report, stats) for stats in report.gates.layers]
    return [Page(
        path=PAGE, template="gates.html", title="Gates", section="gates",
        context={"layers": layers, "rnn_type": report.gates.rnn_type,
                 "memory_gate": report.gates.memory_gate, "long_memory": LONG_MEMORY,
                 "n_tokens": report.gates.n_tokens},
        charts=[chart for s in layers for chart in (s.saturation, s.time_constants)],
    )]


def export(report: ModelReport, data: Path) -> None:
    """Nothing of its own: the gate columns are in neurons.csv."""
