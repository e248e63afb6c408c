"""The cluster explorer's data: the t-SNE maps of `EmbeddingResult`s as the plain records and
names that `charts.cluster_explorer_chart` draws.

Separate from the clusters page, which lists the tables, because this is the one place that
knows both the analysis' results and the chart's layout of them: charts take plain data, and
the analyses know nothing of charts.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np

from reportgen.analysis.clustering import LINKAGE_TITLES, check_linkage
from reportgen.analysis.embedding import EmbeddingResult
from reportgen.capture.core import StateKey, state_name
from reportgen.charts import MAP_DECIMALS, cluster_explorer_chart
from reportgen.errors import ReportgenError


def explorer_chart(results: Sequence[EmbeddingResult], linkage: str = "ward",
                   size: int = 560) -> alt.Chart:
    """Every layer and state's t-SNE map in one scatter, with selectors for layer, linkage and
    number of clusters (`charts.cluster_explorer_chart`), `linkage` selected first."""
    if not results:
        raise ReportgenError("the cluster explorer needs at least one t-SNE map")
    linkages = list(results[0].labels)
    check_linkage(linkage, linkages)
    return cluster_explorer_chart(
        explorer_points(results), explorer_words(results),
        maps=[state_name(result.key) for result in results],
        map_labels=[map_label(result.key) for result in results],
        linkage_titles={name: LINKAGE_TITLES[name] for name in linkages},
        cuts=results[0].options.all_cuts, default_cut=results[0].options.default_cut,
        linkage=linkage, size=size, n_colours=most_clusters(results))


def most_clusters(results: Sequence[EmbeddingResult]) -> int:
    """The most clusters of any map, linkage and cut: the colours the explorer needs."""
    return max(len(np.unique(labels)) for result in results
               for labels in result.cut_labels.values())


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
