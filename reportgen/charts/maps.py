"""Charts of the t-SNE word maps (DESIGN.md 3.3): one map coloured by cluster, and the cluster
explorer that holds every layer and state's map with selectors for map, linkage and cut.

They take the points as arrays and records and the names as strings, not the analysis'
`EmbeddingResult`, so that charts import nothing from the analyses that feed them; the clusters
page shapes the explorer's records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np

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
CANDIDATE_STEPS = 16  # levels of red, green and blue among which further colours are chosen
LIGHTNESS = (30.0, 80.0)  # CIELAB L* of further colours: seen on the white page, and as points


def lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) sRGB in [0, 1] -> (N, 3) CIELAB (D65), where distances follow perceived
    differences better than in RGB."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                             [0.0193, 0.1192, 0.9505]]).T / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]),
                     200 * (f[:, 1] - f[:, 2])], axis=1)


def hex_rgb(colours: Sequence[str]) -> np.ndarray:
    return np.array([[int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)] for c in colours])


def cluster_palette(n: int) -> list[str]:
    """`n` different colours, one per cluster of a cut: the 20 of `CLUSTER_COLOURS`, then each
    further one the colour farthest (in CIELAB) from all chosen so far. A cut of 40 to 160
    clusters would otherwise repeat the 20 hues, and clusters 0 and 20 would look the same; no
    palette of 160 makes every pair easy to tell apart, but no two are alike."""
    colours = list(CLUSTER_COLOURS[:n])
    if len(colours) == n:
        return colours
    levels = np.linspace(0, 1, CANDIDATE_STEPS)
    candidates = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    points = lab(candidates)
    keep = (points[:, 0] >= LIGHTNESS[0]) & (points[:, 0] <= LIGHTNESS[1])
    candidates, points = candidates[keep], points[keep]
    nearest = np.min(np.linalg.norm(points[:, None] - lab(hex_rgb(colours))[None], axis=2), axis=1)
    while len(colours) < n:
        best = int(np.argmax(nearest))
        red, green, blue = np.round(candidates[best] * 255).astype(int)
        colours.append(f"#{red:02x}{green:02x}{blue:02x}")
        nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
    return colours


def embedding_chart(
    xy: np.ndarray,  # (N, 2) t-SNE coordinates
    positions: np.ndarray,  # (N,) positions in the text
    tokens: Sequence[str],  # N tokens
    contexts: Sequence[str],  # N contexts
    clusters: np.ndarray,  # (N,) each point's cluster under `linkage`
    name: str,
    linkage: str = "ward",
) -> alt.Chart:
    """The t-SNE map of the layer and state `name` coloured by `linkage` cluster, with token and
    context in the tooltip.

    Axes are hidden: t-SNE coordinates have no units, only neighbourhoods.
    """
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
            xy, positions, tokens, contexts, clusters
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
                scale=alt.Scale(range=cluster_palette(len(np.unique(clusters)))),
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
            title=f"{name}: t-SNE of {len(tokens)} tokens, "
            f"{linkage} linkage",
            width=560,
            height=560,
        )
    )


def cluster_explorer_chart(
    points: Sequence[dict[str, object]],
    words: Sequence[dict[str, object]],
    maps: Sequence[str],
    map_labels: Sequence[str],
    linkage_titles: Mapping[str, str],
    cuts: Sequence[int],
    default_cut: int,
    linkage: str = "ward",
    size: int = 560,
    n_colours: int = len(CLUSTER_COLOURS),
) -> alt.Chart:
    """Every layer and state's t-SNE map in one scatter, with selectors for layer, linkage and
    number of clusters; `n_colours`, the most clusters of any map, linkage and cut, gives each
    cluster of the shown cut its own colour.

    The points of all maps are one inline dataset, one record of columns per map (`points`, as
    the clusters page's `explorer_points` writes them), flattened after the map filter into one
    row per point: position, x, y and `c`, its cluster under every (linkage, cut) in
    `linkage_titles` (outer) and `cuts` (inner) order. Tokens and contexts are a second dataset
    (`words`) keyed by position and joined by a lookup, since the maps usually share their
    sampled positions and would otherwise repeat the text once per map. Three params bound to
    select inputs pick the map (`maps`, shown as `map_labels`), the linkage (shown by its
    title) and the cut; `min_size` (unbound, set by the page) hides clusters smaller than it; a
    point selection bound to the legend, and to clicks on points, highlights one cluster
    (shift-click adds more, double-click clears).
    """
    linkages = list(linkage_titles)
    cuts = list(cuts)
    map_param = alt.param(
        name=STATE_PARAM, value=maps[0],
        bind=alt.binding_select(options=list(maps), labels=list(map_labels),
                                name="layer and state "),
    )
    linkage_param = alt.param(
        name=LINKAGE_PARAM, value=linkage,
        bind=alt.binding_select(options=linkages, labels=[linkage_titles[name] for name in linkages],
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
    n_points = sum(len(record["position"]) for record in points)
    return (
        alt.Chart(alt.Data(values=list(points)))
        .transform_filter(alt.datum.map == map_param)
        .transform_flatten(["position", "x", "y", "c"])
        .transform_lookup(
            lookup="position",
            from_=alt.LookupData(alt.Data(values=list(words)), key="position",
                                 fields=["token", "context"]),
        )
        .transform_calculate(cluster=cluster_index)
        .transform_joinaggregate(size="count()", groupby=["cluster"])
        .transform_filter(alt.datum.size >= min_size)
        .mark_circle(size=14)
        .encode(
            x=alt.X("x:Q", axis=None, scale=alt.Scale(zero=False)),
            y=alt.Y("y:Q", axis=None, scale=alt.Scale(zero=False)),
            color=alt.Color("cluster:N", scale=alt.Scale(range=cluster_palette(n_colours)),
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
            usermeta={"renderer": "canvas" if n_points > CANVAS_ABOVE else "svg"},
        )
    )


def cut_label(k: int) -> str:
    return "at the distance threshold" if k == 0 else f"{k} clusters"
