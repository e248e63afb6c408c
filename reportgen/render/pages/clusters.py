"""The clusters section: `clusters.html`, and `data/points.csv` and `data/clusters.csv`.

`clusters.html` holds one scatter of every layer and state's t-SNE map (DESIGN.md 3.3), with
Vega-Lite selectors for the map and the linkage, and beside it the cluster tables of every map
and linkage. The page's script shows the table of the selected map and linkage and hides
clusters below a size, in the tables and in the scatter. Everything is inline: the page needs
no server and no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from altair.utils.schemapi import debug_mode

from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.clustering import CLASS_SHOWN_SHARE, LINKAGE_TITLES, TOP_WORDS
from reportgen.analysis.embedding import EmbeddingResult
from reportgen.capture.core import state_name
from reportgen.charts import (
    CUT_PARAM,
    HIGHLIGHT_PARAM,
    LINKAGE_PARAM,
    MIN_SIZE_PARAM,
    STATE_PARAM,
    cut_label,
)
from reportgen.csv_safety import neutralise_formulas
from reportgen.render.pages import ChartSpec, Page, Section, SiteOptions
from reportgen.render.pages.cluster_explorer import explorer_chart, map_label

PAGE = "clusters.html"
CHART_ID = "clusters"
DEFAULT_LINKAGE = "ward_pca"  # the best word classes on a real model; see README "Choosing the cut"
CLUSTERS_BY_CUT = "clusters_by_cut.csv"


def section(report: ModelReport) -> Section | None:
    if not report.embeddings:
        return None
    return Section("clusters", "Clusters", PAGE,
                   "Each token occurrence mapped to 2-D by t-SNE from one layer and state, "
                   "clustered with single and ward linkage, with each cluster's words.")


@dataclass(frozen=True)
class ClusterTableRow:
    cluster: int
    size: int
    top_words: tuple[tuple[str, int], ...]  # the most frequent words, with counts
    n_words: int  # distinct words in the cluster
    word_class: str  # the class most of its points belong to, "" for none
    class_share: float


@dataclass(frozen=True)
class ClusterTable:
    """The clusters of one map under one linkage, as the page lists them."""

    map: str  # "L1-h", the value of the chart's map selector
    label: str  # "L1-h: layer 1, hidden state"
    linkage: str
    linkage_title: str
    cut: int  # clusters asked for, 0 for the distance threshold; the cut selector's value
    cut_title: str
    n_points: int
    rows: list[ClusterTableRow]


def page_tables(results: list[EmbeddingResult]) -> list[ClusterTable]:
    """One table per map, linkage and cut, in map order, each listing clusters by number."""
    return [
        ClusterTable(
            map=state_name(result.key),
            label=map_label(result.key),
            linkage=linkage,
            linkage_title=LINKAGE_TITLES[linkage],
            cut=cut,
            cut_title=cut_label(cut),
            n_points=result.n_points,
            rows=[ClusterTableRow(row.cluster, row.size, row.top_words(TOP_WORDS), len(row.words),
                                  row.word_class, row.class_share)
                  for row in rows],
        )
        for result in results
        for (linkage, cut), rows in result.cut_tables.items()
    ]


def pages(report: ModelReport, options: SiteOptions) -> list[Page]:
    results = report.embeddings
    first = results[0].options
    return [Page(
        path=PAGE,
        template="clusters.html",
        title="Clusters",
        section="clusters",
        context={
            "tables": page_tables(results),
            "default_map": state_name(results[0].key),
            "default_linkage": DEFAULT_LINKAGE,
            "default_cut": first.default_cut,
            "params": {"map": STATE_PARAM, "linkage": LINKAGE_PARAM, "cut": CUT_PARAM,
                       "min_size": MIN_SIZE_PARAM, "highlight": HIGHLIGHT_PARAM},
            "chart_id": CHART_ID,
            "n_points": max(result.n_points for result in results),
            "n_tokens": report.capture.n_tokens,
            "options": first,
            "top_words": TOP_WORDS,
            "class_shown_share": CLASS_SHOWN_SHARE,
        },
        charts=[ChartSpec(CHART_ID, explorer_spec(results), image_name=(
            f"clusters-{state_name(results[0].key)}-{DEFAULT_LINKAGE}"))],
    )]


def explorer_spec(results: list[EmbeddingResult]) -> dict[str, Any]:
    """The explorer's Vega-Lite for the page: not validated, and without `$schema`.

    Validating 20,000 rows (four maps of 5,000 points) costs about 12 s, against 2 s without;
    the tests validate the same builder's spec on a small report. `$schema` is only a version
    tag that vegaEmbed does not need, and a page that names no URL is plainly offline.
    """
    with debug_mode(False):
        spec = explorer_chart(results, DEFAULT_LINKAGE).to_dict(validate=False)
    spec.pop("$schema", None)
    return spec


def points_frame(results: list[EmbeddingResult]) -> pd.DataFrame:
    """points.csv: every map's points, one row per sampled position, layer and state."""
    return pd.concat([result.points_frame() for result in results], ignore_index=True)


def clusters_frame(results: list[EmbeddingResult], every_cut: bool = False) -> pd.DataFrame:
    """clusters.csv: every map's clusters under each linkage at the default cut, with all
    their words and their class; `every_cut` adds the other cuts, as clusters_by_cut.csv."""
    return pd.concat([result.clusters_frame(every_cut) for result in results], ignore_index=True)


def export(report: ModelReport, data: Path) -> None:
    safe = neutralise_formulas
    safe(points_frame(report.embeddings)).to_csv(data / "points.csv", index=False,
                                                 float_format="%.6g")
    safe(clusters_frame(report.embeddings)).to_csv(data / "clusters.csv", index=False)
    safe(clusters_frame(report.embeddings, every_cut=True)).to_csv(data / CLUSTERS_BY_CUT,
                                                                   index=False)
