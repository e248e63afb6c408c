"""Chart builders: result dataclasses in, Altair charts out (DESIGN.md 1 and 4).

Every histogram is binned in Python and reaches the chart as records in `data.values`, so a
page carries a few hundred numbers rather than the states. Fine histograms are merged into at
most `MAX_BARS` bars for display; the exports keep every 0.01 bin. Non-finite numbers become
null, since JSON has no NaN. Nothing here writes a page: the site embeds `chart.to_dict()`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import altair as alt
import numpy as np

from reportgen.analysis.clustering import LINKAGE_TITLES
from reportgen.capture import StateKey, state_name
from reportgen.errors import ReportgenError

if TYPE_CHECKING:
    from reportgen.analysis.concepts import NeuronConcepts
    from reportgen.analysis.distributions import NeuronStats
    from reportgen.analysis.embedding import EmbeddingResult

MAX_BARS = 250  # 200 bins of h stay whole; a wide cell interval is merged down to this
WIDTH = 420
HEIGHT = 220
SMALL_PANEL = 170  # px: one panel of a chart faceted by layer and state
AVERAGE = "average"


def average_distribution_chart(stats: NeuronStats, max_bars: int = MAX_BARS) -> alt.Chart:
    """The layer's average distribution q as bars over the value axis."""
    records = binned_records(stats.edges, {AVERAGE: stats.average}, max_bars)
    chart = alt.Chart(alt.Data(values=records), title=f"{stats.name}: average distribution")
    return chart.mark_bar().encode(
        x=alt.X("start:Q", title="activation"),
        x2="end:Q",
        y=alt.Y("share:Q", title="share of values"),
        y2=alt.datum(0),  # without it a bar ranged in x is drawn as a thin tick at y
        tooltip=[
            alt.Tooltip("start:Q", format=".2f"),
            alt.Tooltip("end:Q", format=".2f"),
            alt.Tooltip("share:Q", format=".4f"),
        ],
    ).properties(width=WIDTH, height=HEIGHT)


def neuron_histogram_chart(stats: NeuronStats, neuron: int, max_bars: int = MAX_BARS) -> alt.Chart:
    """One neuron's distribution drawn over the layer's average, as overlapping translucent bars."""
    # the average first, so the neuron's bars are drawn on top of it
    shares = stats.distribution(neuron)  # (B,)
    series = {AVERAGE: stats.average, f"neuron {neuron}": shares}
    domain = histogram_domain(stats.edges, shares)
    records = drawn_bars(binned_records(stats.edges, series, max_bars), domain)
    chart = (alt.Chart(alt.Data(values=series_columns(records)), title=f"{stats.name} neuron {neuron}")
             .transform_flatten(["start", "end", "share"]))
    # clamp: a bar across an end of the range is cut at the axis (mark clipping would write a
    # clip-path id that changes between conversions)
    return chart.mark_bar(opacity=0.55).encode(
        x=alt.X("start:Q", title="activation",
                scale=alt.Scale(domain=domain, nice=False, clamp=True)),
        x2="end:Q",
        y=alt.Y("share:Q", title="share of values"),
        y2=alt.datum(0),  # each series from zero, overlapping rather than stacked
        color=alt.Color("series:N", title=None, sort=list(series)),
        tooltip=[
            alt.Tooltip("series:N"),
            alt.Tooltip("start:Q", format=".2f"),
            alt.Tooltip("end:Q", format=".2f"),
            alt.Tooltip("share:Q", format=".4f"),
        ],
    ).properties(width=WIDTH, height=HEIGHT)


def series_columns(records: list[dict[str, object]]) -> list[dict[str, object]]:
    """Long records {series, start, end, share} as one record of columns per series, in order;
    a chart flattens them back. A neuron page's bars take a third of the bytes this way."""
    columns: dict[object, dict[str, list[object]]] = {}
    for record in records:
        series = columns.setdefault(record["series"], {"start": [], "end": [], "share": []})
        for name in ("start", "end", "share"):
            series[name].append(record[name])
    return [{"series": name, **values} for name, values in columns.items()]


def drawn_bars(records: list[dict[str, object]], domain: list[float]) -> list[dict[str, object]]:
    """The bars that show: some share, and at least partly inside the x range. The rest drew
    nothing, yet the layer's average over a wide cell interval made up half of a neuron page."""
    low, high = domain
    return [record for record in records
            if record["share"] > 0 and record["end"] > low and record["start"] < high]


def histogram_domain(edges: np.ndarray, shares: np.ndarray, step: float = 0.1) -> list[float]:
    """The x range of a neuron's histogram: the bins that hold its values, widened by a tenth of
    their span (at least `step`) and rounded out to multiples of `step`, within the binned
    interval. A unit that stays within ±1.5 of a ±3 cell interval is drawn over ±1.8, not ±3.

    edges (B+1,), shares (B,); a neuron with no value in any bin gets the whole interval.
    """
    held = np.flatnonzero(np.asarray(shares) > 0)
    low, high = float(edges[0]), float(edges[-1])
    if held.size == 0:
        return [_edge(edges[0]), _edge(edges[-1])]
    first, last = float(edges[held[0]]), float(edges[held[-1] + 1])
    margin = max(0.1 * (last - first), step)
    start = math.floor(round((first - margin) / step, 6)) * step
    stop = math.ceil(round((last + margin) / step, 6)) * step
    return [round(max(start, low), 6), round(min(stop, high), 6)]


KL_KINDS = ("labelled", "unlabelled", "near zero")  # the KL scatter's colours, in legend order
KL_COLOURS = ("#b2182b", "#4c78a8", "#b8bcc4")


def kl_scatter_chart(stats: NeuronStats, labels: Sequence[str] | None = None) -> alt.Chart:
    """KL(p||q) against KL(q||p), one point per neuron, labelled units in their own colour.

    `labels` holds each neuron's labels as one text ("" for none), as neurons.csv writes them.
    """
    labels = labels if labels is not None else [""] * stats.n_neurons
    records = [
        {
            "neuron": neuron,
            "rank": int(stats.rank[neuron]),
            "kl_p_q": _finite_or_none(stats.kl_p_q[neuron]),
            "kl_q_p": _finite_or_none(stats.kl_q_p[neuron]),
            "kind": ("near zero" if stats.near_zero[neuron]
                     else "labelled" if labels[neuron] else "unlabelled"),
            "labels": labels[neuron] or "none",
        }
        for neuron in range(stats.n_neurons)
    ]
    chart = alt.Chart(alt.Data(values=records), title=f"{stats.name}: KL of each neuron")
    return chart.mark_point(size=36, filled=True).encode(
        x=alt.X("kl_p_q:Q", title="KL(p || q), nats"),
        y=alt.Y("kl_q_p:Q", title="KL(q || p), nats"),
        color=alt.Color("kind:N", title="neuron",
                        scale=alt.Scale(domain=list(KL_KINDS), range=list(KL_COLOURS))),
        shape=alt.Shape("kind:N", title="neuron", scale=alt.Scale(
            domain=list(KL_KINDS), range=["diamond", "circle", "circle"])),
        tooltip=[
            alt.Tooltip("neuron:Q", title="neuron"),
            alt.Tooltip("rank:Q", title="KL rank"),
            alt.Tooltip("labels:N", title="labels (AUROC)"),
            alt.Tooltip("kind:N", title="kind"),
            alt.Tooltip("kl_p_q:Q", title="KL(p || q), nats", format=".3f"),
            alt.Tooltip("kl_q_p:Q", title="KL(q || p), nats", format=".3f"),
        ],
    ).properties(width=WIDTH, height=WIDTH)


def concept_auroc_chart(concepts: NeuronConcepts, neuron: int, threshold: float) -> alt.Chart:
    """AUROC of one neuron for each feature, as bars from chance (0.5) up or down, with the
    within-word AUROC as a tick on each bar and the label thresholds as dashed lines."""
    records = [
        {"feature": feature, "auroc": _finite_or_none(concepts.auroc[neuron, index]),
         "within": _finite_or_none(concepts.within[neuron, index])}
        for index, feature in enumerate(concepts.features)
    ]
    base = alt.Chart(alt.Data(values=records))
    x = alt.X("feature:N", title=None, sort=list(concepts.features))
    bars = base.mark_bar().encode(
        x=x,
        y=alt.Y("auroc:Q", title="AUROC", scale=alt.Scale(domain=[0, 1])),
        y2=alt.datum(0.5),
        tooltip=[alt.Tooltip("feature:N", title="feature"),
                 alt.Tooltip("auroc:Q", title="AUROC", format=".3f"),
                 alt.Tooltip("within:Q", title="within-word AUROC", format=".3f")],
    )
    ticks = base.mark_tick(color="black", thickness=2).encode(x=x, y="within:Q")
    lines = alt.Chart(alt.Data(values=[{"at": 0.5 - threshold}, {"at": 0.5 + threshold}]))
    rules = lines.mark_rule(strokeDash=[4, 3], color="#5b6474").encode(y="at:Q")
    return alt.layer(bars, ticks, rules, title=f"{concepts.name} neuron {neuron}: AUROC per feature "
                                    "(ticks: within-word)").properties(width=WIDTH, height=HEIGHT)


def binned_records(
    edges: np.ndarray,  # (B+1,)
    series: dict[str, np.ndarray],  # name -> (B,) shares
    max_bars: int = MAX_BARS,
) -> list[dict[str, object]]:
    """Long-format records {series, start, end, share}, adjacent bins merged to at most max_bars."""
    n_bins = len(edges) - 1
    group = max(1, math.ceil(n_bins / max_bars))
    starts = np.arange(0, n_bins, group)  # first bin of each bar
    ends = np.minimum(starts + group, n_bins)
    records = []
    for name, shares in series.items():
        merged = np.add.reduceat(np.asarray(shares, dtype=np.float64), starts)
        records += [
            {"series": name, "start": _edge(edges[s]), "end": _edge(edges[e]), "share": float(share)}
            for s, e, share in zip(starts, ends, merged)
        ]
    return records


def _edge(value: np.floating) -> float:
    """A float32 edge as the short decimal it stands for (-0.99, not -0.9900000095367432)."""
    return round(float(value), 6)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def embedding_chart(result: EmbeddingResult, linkage: str = "ward") -> alt.Chart:
    """The t-SNE map coloured by `linkage` cluster, with token and context in the tooltip.

    Axes are hidden: t-SNE coordinates have no units, only neighbourhoods.
    """
    if linkage not in result.labels:
        raise ReportgenError(f"unknown linkage {linkage!r}; choose one of {', '.join(result.labels)}")
    values = [
        {
            "x": round(float(x), 3),
            "y": round(float(y), 3),
            "position": int(position),
            "token": token,
            "context": context,
            "cluster": int(cluster),
        }
        for (x, y), position, token, context, cluster in zip(
            result.xy, result.positions, result.tokens, result.contexts, result.labels[linkage]
        )
    ]
    return (
        alt.Chart(alt.Data(values=values))
        .mark_circle(size=12, opacity=0.7)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color(
                "cluster:N",
                scale=alt.Scale(range=list(CLUSTER_COLOURS)),
                legend=alt.Legend(title=f"{linkage} cluster", columns=2),
            ),
            tooltip=[
                alt.Tooltip("token:N", title="token"),
                alt.Tooltip("context:N", title="context"),
                alt.Tooltip("cluster:N", title="cluster"),
                alt.Tooltip("position:Q", title="position"),
            ],
        )
        .properties(
            title=f"{state_name(result.key)}: t-SNE of {result.n_points} tokens, "
            f"{linkage} linkage",
            width=560,
            height=560,
        )
    )


# The explorer's Vega signals; the page's script listens to the first three and sets the fourth.
STATE_PARAM = "layer_state"
LINKAGE_PARAM = "linkage"
CUT_PARAM = "n_clusters"
MIN_SIZE_PARAM = "min_size"
HIGHLIGHT_PARAM = "highlight"
CANVAS_ABOVE = 5000  # points in a spec above which the page draws on canvas rather than SVG
MAP_DECIMALS = 2  # t-SNE units: the maps span about 100, so 0.01 is below a pixel
# 20 distinct hues: Tableau 10, then its light partners shifted so that no two are alike
CLUSTER_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                   "#ff9da7", "#9c755f", "#bab0ac", "#1f3f6e", "#8c510a", "#7a0177", "#00a087",
                   "#b8e186", "#3c5488", "#f4a582", "#525252", "#c51b7d", "#80cdc1")


def cluster_explorer_chart(
    results: Sequence[EmbeddingResult], linkage: str = "ward", size: int = 560
) -> alt.Chart:
    """Every layer and state's t-SNE map in one scatter, with selectors for layer, linkage and
    number of clusters.

    The points of all maps are one inline dataset, one record of columns per map
    (`explorer_points`), flattened after the map filter into one row per point: position, x, y
    and `c`, its cluster under every (linkage, cut) in `explorer_cuts` order. Tokens and contexts are a second dataset keyed by position and joined
    by a lookup, since the maps usually share their sampled positions and would otherwise repeat
    the text once per map. Three params bound to select inputs pick the map, the linkage and
    the cut; `min_size` (unbound, set by the page) hides clusters smaller than it; a point
    selection bound to the legend, and to clicks on points, highlights one cluster (shift-click
    adds more, double-click clears).
    """
    if not results:
        raise ReportgenError("the cluster explorer needs at least one t-SNE map")
    names = [state_name(result.key) for result in results]
    linkages = list(results[0].labels)
    if linkage not in linkages:
        raise ReportgenError(f"unknown linkage {linkage!r}; choose one of {', '.join(linkages)}")
    cuts = list(results[0].options.all_cuts)
    default_cut = results[0].options.default_cut
    map_param = alt.param(
        name=STATE_PARAM, value=names[0],
        bind=alt.binding_select(options=names, labels=[map_label(r.key) for r in results],
                                name="layer and state "),
    )
    linkage_param = alt.param(
        name=LINKAGE_PARAM, value=linkage,
        bind=alt.binding_select(options=linkages, labels=[LINKAGE_TITLES[name] for name in linkages],
                                name="clusters "),
    )
    cut_param = alt.param(
        name=CUT_PARAM, value=default_cut,
        bind=alt.binding_select(options=cuts, labels=[cut_label(k) for k in cuts], name="cut "),
    )
    min_size = alt.param(name=MIN_SIZE_PARAM, value=1)
    highlight = alt.selection_point(name=HIGHLIGHT_PARAM, fields=["cluster"], bind="legend",
                                    on="click", clear="dblclick")
    cluster_index = (f"datum.c[indexof({json.dumps(linkages)}, {LINKAGE_PARAM}) * {len(cuts)}"
                     f" + indexof({json.dumps(cuts)}, {CUT_PARAM})]")
    return (
        alt.Chart(alt.Data(values=explorer_points(results)))
        .transform_filter(alt.datum.map == map_param)
        .transform_flatten(["position", "x", "y", "c"])
        .transform_lookup(
            lookup="position",
            from_=alt.LookupData(alt.Data(values=explorer_words(results)), key="position",
                                 fields=["token", "context"]),
        )
        .transform_calculate(cluster=cluster_index)
        .transform_joinaggregate(size="count()", groupby=["cluster"])
        .transform_filter(alt.datum.size >= min_size)
        .mark_circle(size=14)
        .encode(
            x=alt.X("x:Q", axis=None, scale=alt.Scale(zero=False)),
            y=alt.Y("y:Q", axis=None, scale=alt.Scale(zero=False)),
            color=alt.Color("cluster:N", scale=alt.Scale(range=list(CLUSTER_COLOURS)),
                            legend=alt.Legend(title="cluster", columns=2, symbolLimit=40)),
            opacity=alt.condition(highlight, alt.value(0.75), alt.value(0.06)),
            tooltip=[
                alt.Tooltip("token:N", title="token"),
                alt.Tooltip("context:N", title="context"),
                alt.Tooltip("cluster:N", title="cluster"),
                alt.Tooltip("size:Q", title="cluster size"),
                alt.Tooltip("position:Q", title="position"),
            ],
        )
        .add_params(map_param, linkage_param, cut_param, min_size, highlight)
        .properties(
            width=size, height=size,
            usermeta={"renderer": "canvas" if sum(r.n_points for r in results) > CANVAS_ABOVE
                      else "svg"},
        )
    )


def cut_label(k: int) -> str:
    return "at the distance threshold" if k == 0 else f"{k} clusters"


def map_label(key: StateKey) -> str:
    """`(1, "h")` -> "L1-h: layer 1, hidden state", the text of a selector's option."""
    layer, state = key
    kind = {"h": "hidden state", "c": "cell state"}.get(state, state)
    return f"{state_name(key)}: layer {layer}, {kind}"


def explorer_points(results: Sequence[EmbeddingResult]) -> list[dict[str, object]]:
    """One record per map, in columns: its name, and its points' positions, x, y and `c`, each
    point's cluster under every linkage (outer) and cut (inner), in the order of the explorer's
    selectors. The chart flattens the selected map's columns into one row per point; written
    as columns, the field names come once per map instead of once per point, which saves a
    third of the cluster page."""
    records: list[dict[str, object]] = []
    for result in results:
        xy = np.round(result.xy.astype(np.float64), MAP_DECIMALS)  # (N, 2)
        columns = np.stack([result.cut_labels[(linkage, k)] for linkage in result.labels
                            for k in result.options.all_cuts], axis=1)  # (N, L*K)
        records.append({"map": state_name(result.key), "position": result.positions.tolist(),
                        "x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(), "c": columns.tolist()})
    return records


def explorer_words(results: Sequence[EmbeddingResult]) -> list[dict[str, object]]:
    """One record per sampled position over all maps: its token and its context."""
    words: dict[int, dict[str, object]] = {}
    for result in results:
        for position, token, context in zip(result.positions.tolist(), result.tokens,
                                            result.contexts):
            words.setdefault(position, {"position": position, "token": token, "context": context})
    return [words[position] for position in sorted(words)]



def matched_correlation_chart(records: Sequence[dict[str, object]], state_names: Sequence[str],
                              thresholds: Sequence[float]) -> alt.FacetChart:
    """Sorted matched |r| of each model pair (records {pair, state, rank, abs_r}), one panel
    per layer and state, with dashed rules at `thresholds`."""
    line = alt.Chart().mark_line(strokeWidth=1.5).encode(
        x=alt.X("rank:Q", title="matched units, best first", axis=alt.Axis(format=".0%")),
        y=alt.Y("abs_r:Q", title="|r| of the match", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("pair:N", title="models"),
        tooltip=[alt.Tooltip("pair:N"), alt.Tooltip("rank:Q", format=".0%"),
                 alt.Tooltip("abs_r:Q", format=".3f")],
    )
    rules = [alt.Chart().mark_rule(strokeDash=[4, 3], color="#5b6474").encode(y=alt.datum(t))
             for t in thresholds]
    chart = alt.layer(line, *rules, data=alt.Data(values=list(records)))
    return chart.properties(width=SMALL_PANEL, height=SMALL_PANEL).facet(
        facet=alt.Facet("state:N", sort=list(state_names), title=None),
        columns=4, title="Matched unit correlations, sorted")


def similarity_matrix_chart(records: Sequence[dict[str, object]], order: Sequence[str],
                            panels: Sequence[str], title: str) -> alt.FacetChart:
    """Squares of linear CKA (records {panel, row, column, cka}), one panel per `panels`,
    rows and columns in `order`, each cell labelled with its value."""
    x = alt.X("column:N", sort=list(order), title=None, axis=alt.Axis(labelAngle=-40))
    y = alt.Y("row:N", sort=list(order), title=None)
    base = alt.Chart().encode(x=x, y=y)
    cells = base.mark_rect().encode(
        color=alt.Color("cka:Q", title="linear CKA", scale=alt.Scale(domain=[0, 1],
                                                                      scheme="viridis")),
        tooltip=[alt.Tooltip("panel:N"), alt.Tooltip("row:N"), alt.Tooltip("column:N"),
                 alt.Tooltip("cka:Q", format=".3f")])
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("cka:Q", format=".2f"),
        color=alt.condition("datum.cka > 0.6", alt.value("black"), alt.value("white")))
    side = max(SMALL_PANEL // 2, 34 * len(order))
    return alt.layer(cells, text, data=alt.Data(values=list(records))).properties(
        width=side, height=side).facet(
        facet=alt.Facet("panel:N", sort=list(panels), title=None), columns=4, title=title)
def output_weights_chart(records: Sequence[dict[str, object]], title: str) -> alt.Chart:
    """A unit's decoder weights for the words it promotes and suppresses most, as bars from 0.

    records: {word, weight}, in the order drawn (promoted first, most promoted on top).
    """
    return alt.Chart(alt.Data(values=list(records)), title=title).mark_bar().encode(
        y=alt.Y("word:N", title=None, sort=None),
        x=alt.X("weight:Q", title="decoder weight (logit per unit of h)"),
        color=alt.condition("datum.weight > 0", alt.value("#2b6cb0"), alt.value("#c05621")),
        tooltip=[alt.Tooltip("word:N"), alt.Tooltip("weight:Q", format=".4f")],
    ).properties(width=WIDTH, height=HEIGHT)


def ablation_feature_chart(records: Sequence[dict[str, object]], title: str) -> alt.Chart:
    """Mean Δ loss of one ablation on the positions of each feature, with the overall mean as a
    dashed rule. records: {feature, delta, positions}; delta None where a feature is absent."""
    base = alt.Chart(alt.Data(values=list(records)))
    bars = base.mark_bar().encode(
        x=alt.X("feature:N", title=None, sort=None),
        y=alt.Y("delta:Q", title="Δ loss (nats per token)"),
        color=alt.condition("datum.delta > 0", alt.value("#c53030"), alt.value("#718096")),
        tooltip=[alt.Tooltip("feature:N"), alt.Tooltip("delta:Q", format=".4f"),
                 alt.Tooltip("positions:Q", title="positions", format=",")],
    )
    overall = base.transform_filter("datum.feature == 'all positions'").mark_rule(
        strokeDash=[4, 3], color="#1a202c").encode(y="delta:Q")
    return alt.layer(bars, overall, title=title).properties(width=WIDTH, height=HEIGHT)
