"""The clusters section: clusters.html, data/points.csv and data/clusters.csv, on a real model.

The exports are checked against each other and against tokens.csv.gz (counts recomputed here with
pandas), the page's chart spec is parsed back and compiled to Vega, and the command's flags are
run through `main`.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest
import vl_convert

from reportgen.analysis.embedding import EmbeddingOptions
from reportgen.capture.core import Capture
from reportgen.cli.main import main
from reportgen.csv_safety import FORMULA_STARTS
from reportgen.runs.report import ReportConfig, build_report, embedded_keys

MAX_POINTS = 300
N_CLUSTERS = 8
CUTS = (4, 12)
LINKAGES = ("single", "ward", "ward_pca")
MAPS = ((1, "h"), (2, "c"))
POINT_COLUMNS = ["layer", "state", "position", "token", "x", "y", "cluster_single",
                 "cluster_ward", "cluster_ward_pca",
                 *[f"cluster_{linkage}_k{k}" for linkage in LINKAGES for k in (4, 8, 12)]]
CLUSTER_COLUMNS = ["layer", "state", "linkage", "cluster", "size", "words", "class",
                   "class_share", "top_class", "top_class_share"]
SPEC = re.compile(r'<script type="application/json" id="spec-clusters">(.*?)</script>', re.S)
TABLE = re.compile(r'<table class="data cluster-table" data-map="([^"]+)" '
                   r'data-linkage="([^"]+)" data-cut="(\d+)"( hidden)?>(.*?)</table>', re.S)
ROW = re.compile(r'<tr data-size="(\d+)"><td class="num">(\d+)</td>.*?<td class="class">(.*?)</td>'
                 r'<td class="words">(.*?)</td></tr>', re.S)
WORD = re.compile(r'<bdi>(.*?)</bdi>&nbsp;<small>(\d+)</small>')


@pytest.fixture(scope="module")
def site(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report with two maps of MAX_POINTS sampled positions; one thread keeps t-SNE quick."""
    out = tmp_path_factory.mktemp("cluster-sites") / "report"
    options = EmbeddingOptions(max_points=MAX_POINTS, seed=5, n_clusters=N_CLUSTERS,
                               min_cluster_size=3, cuts=CUTS)
    return build_report(ReportConfig(tiny_model, out, data=tiny_corpus, quiet=True,
                                     embedding=options, embed_states=MAPS, threads=1))


def read_export(path: Path) -> pd.DataFrame:
    """A CSV export with its text cells as the corpus wrote them: the exports put a `'` before
    a cell a spreadsheet would run (`=`, `@,@`), which is stripped here."""
    frame = pd.read_csv(path, keep_default_na=False)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(raw_cell)
    return frame


def raw_cell(cell: str) -> str:
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


@pytest.fixture(scope="module")
def points(site: Path) -> pd.DataFrame:
    return read_export(site / "data" / "points.csv")


@pytest.fixture(scope="module")
def clusters(site: Path) -> pd.DataFrame:
    return read_export(site / "data" / "clusters.csv")


@pytest.fixture(scope="module")
def page(site: Path) -> str:
    return (site / "clusters.html").read_text(encoding="utf-8")


def parse_words(text: str) -> list[tuple[str, int]]:
    """clusters.csv `words`: `word:count` items split on their last colon (words may hold one)."""
    return [(item.rsplit(":", 1)[0], int(item.rsplit(":", 1)[1])) for item in text.split(" ")]


def test_exports_have_the_design_columns_for_every_map(site: Path, points, clusters) -> None:
    assert list(points.columns) == POINT_COLUMNS
    assert list(clusters.columns) == CLUSTER_COLUMNS
    maps = sorted(points.groupby(["layer", "state"]).groups)
    assert maps == sorted(MAPS)
    assert sorted(clusters.groupby(["layer", "state"]).groups) == sorted(MAPS)
    assert set(clusters["linkage"]) == set(LINKAGES)
    tokens = read_export(site / "data" / "tokens.csv.gz")
    for _, rows in points.groupby(["layer", "state"]):
        assert len(rows) == MAX_POINTS
        assert rows["position"].is_unique and rows["position"].is_monotonic_increasing
        assert rows["token"].tolist() == tokens["token"].iloc[rows["position"]].tolist()
    first, second = (rows["position"].tolist() for _, rows in points.groupby(["layer", "state"]))
    assert first == second  # every map samples the same positions


def test_each_cluster_row_counts_its_points(points, clusters) -> None:
    for (layer, state, linkage), table in clusters.groupby(["layer", "state", "linkage"]):
        rows = points[(points["layer"] == layer) & (points["state"] == state)]
        labels = rows[f"cluster_{linkage}"]
        assert table["cluster"].tolist() == list(range(labels.nunique()))
        assert table["size"].tolist() == [int((labels == k).sum()) for k in table["cluster"]]
        assert table["size"].is_monotonic_decreasing  # numbered by size, 0 the largest
        for cluster, words in zip(table["cluster"], table["words"]):
            listed = parse_words(words)
            counted = Counter(rows.loc[labels == cluster, "token"])
            assert dict(listed) == counted
            assert [count for _, count in listed] == sorted(counted.values(), reverse=True)


def test_chart_has_selectors_highlight_and_every_point(page: str, points) -> None:
    spec = json.loads(SPEC.search(page).group(1))
    alt.Chart.from_dict(spec)  # valid Vega-Lite: the page skips validation on large specs
    assert "$schema" not in spec  # no URL anywhere in an offline page
    params = {param["name"]: param for param in spec["params"]}
    maps = params["layer_state"]["bind"]
    assert maps["input"] == "select" and maps["options"] == ["L1-h", "L2-c"]
    assert params["layer_state"]["value"] == "L1-h"
    assert params["linkage"]["bind"]["options"] == list(LINKAGES)
    assert params["linkage"]["value"] == "ward_pca"
    assert params["n_clusters"]["bind"]["options"] == [4, 8, 12]
    assert params["n_clusters"]["value"] == N_CLUSTERS
    highlight = params["highlight"]
    assert highlight["select"]["type"] == "point" and highlight["select"]["fields"] == ["cluster"]
    assert highlight["bind"] == "legend"
    assert spec["encoding"]["color"]["field"] == "cluster"
    assert "param" in spec["encoding"]["opacity"]["condition"]
    assert {t["field"] for t in spec["encoding"]["tooltip"]} >= {"token", "context"}
    assert {"flatten": ["position", "x", "y", "c"]} in spec["transform"]
    values = [{"map": record["map"], "position": position, "c": c}  # as the flatten makes them
              for record in spec["data"]["values"]
              for position, c, _, _ in zip(record["position"], record["c"], record["x"],
                                           record["y"], strict=True)]
    assert len(values) == len(points)
    by_point = {(f"L{row.layer}-{row.state}", row.position): row for row in points.itertuples()}
    for value in values:  # `c` holds every linkage's cluster at every cut, in selector order
        row = by_point[(value["map"], value["position"])]
        assert value["c"] == [getattr(row, f"cluster_{linkage}_k{k}")
                              for linkage in LINKAGES for k in (4, 8, 12)]
    assert {(v["map"], v["position"]) for v in values} == {
        (f"L{layer}-{state}", position)
        for layer, state, position in points[["layer", "state", "position"]].itertuples(False)
    }
    words = next(t["from"]["data"]["values"] for t in spec["transform"] if "lookup" in t)
    by_position = dict(zip(points["position"], points["token"]))
    assert {w["position"]: w["token"] for w in words} == by_position
    assert all(f"[[{w['token']}]]" in w["context"] for w in words)
    assert spec["usermeta"]["renderer"] == "svg"  # 600 rows: below the canvas threshold


def test_chart_compiles_and_clicks_on_points_and_legend_highlight(page: str) -> None:
    vega = vl_convert.vegalite_to_vega(json.loads(SPEC.search(page).group(1)))
    signals = {signal["name"]: signal for signal in vega["signals"]}
    assert {"layer_state", "linkage", "n_clusters", "min_size"} <= set(signals)
    assert "bind" in signals["layer_state"] and "bind" in signals["linkage"]
    tuple_events = json.dumps(signals["highlight_tuple"]["on"])
    assert '"type": "click"' in tuple_events  # a click on a point
    assert "highlight_cluster_legend" in tuple_events  # a click on the legend
    legend_events = json.dumps(signals["highlight_cluster_legend"]["on"])
    assert "cluster_legend_symbols" in legend_events


def test_tables_list_each_map_linkage_and_cut_with_class_and_top_words(site: Path,
                                                                       page: str) -> None:
    every = read_export(site / "data" / "clusters_by_cut.csv")
    tables = TABLE.findall(page)
    assert {(m, linkage, int(k)) for m, linkage, k, _, _ in tables} == {
        (f"L{layer}-{state}", linkage, k) for layer, state in MAPS for linkage in LINKAGES
        for k in (4, 8, 12)
    }
    shown_first = [(m, linkage, int(k)) for m, linkage, k, hidden, _ in tables if not hidden]
    assert shown_first == [("L1-h", "ward_pca", N_CLUSTERS)]
    for map_name, linkage, k, _, body in tables:
        layer, state = int(map_name[1]), map_name[-1]
        expected = every[(every["layer"] == layer) & (every["state"] == state)
                         & (every["linkage"] == linkage) & (every["n_clusters"] == int(k))]
        rows = ROW.findall(body)
        assert [(int(size), int(cluster)) for size, cluster, _, _ in rows] == list(
            zip(expected["size"], expected["cluster"]))
        for (_, _, shown_class, cell), row in zip(rows, expected.to_dict("records")):
            shown = [(html.unescape(word), int(count)) for word, count in WORD.findall(cell)]
            assert shown == parse_words(row["words"])[:10]
            named = float(row["top_class_share"] or 0) >= 0.5 and row["top_class"] != ""
            assert (row["class"] != "") == named  # the export names a class as the page does
            if named:
                assert shown_class.startswith(row["class"] + " ")
                assert float(row["class_share"]) == float(row["top_class_share"])
            else:
                assert "mixed" in shown_class and row["class_share"] == ""


def test_size_filter_and_exports_are_on_the_page(page: str) -> None:
    assert re.search(r'<input type="number" class="min-cluster-size" min="1"', page)
    assert 'data-min-size-param="min_size"' in page
    assert 'href="data/points.csv"' in page and 'href="data/clusters.csv"' in page


def test_overview_notes_the_sample_and_links_the_section(site: Path) -> None:
    tokens = pd.read_csv(site / "data" / "tokens.csv.gz", keep_default_na=False)
    index = (site / "index.html").read_text(encoding="utf-8")
    assert f"{MAX_POINTS:,} of {len(tokens):,} positions sampled for the t-SNE maps" in index
    assert 'href="clusters.html"' in index
    report = json.loads((site / "data" / "report.json").read_text(encoding="utf-8"))
    assert report["options"]["embed_states"] == ["L1-h", "L2-c"]
    assert {"t-SNE L1-h", "t-SNE L2-c"} <= set(report["timings_seconds"])


def test_every_state_is_mapped_unless_told_otherwise(tmp_path: Path) -> None:
    n_tokens, hidden = 4, 3
    capture = Capture(
        token_ids=np.zeros(n_tokens, dtype=np.int64), tokens=["a"] * n_tokens,
        states={key: np.zeros((n_tokens, hidden), dtype=np.float32)
                for key in [(2, "h"), (1, "c"), (1, "h")]},
        log_prob_next=np.zeros(n_tokens, dtype=np.float32),
        top_ids=np.zeros((n_tokens, 5), dtype=np.int64),
        top_log_probs=np.zeros((n_tokens, 5), dtype=np.float32), vocabulary=["a"],
    )
    config = ReportConfig("model.pt", tmp_path / "out")
    assert embedded_keys(config, capture) == [(1, "h"), (1, "c"), (2, "h")]
    config = ReportConfig("model.pt", tmp_path / "out", embed_states=())
    assert embedded_keys(config, capture) == []


def test_no_clusters_flag_removes_the_section(tiny_model: Path, tiny_corpus: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "report"
    code = main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                 "--max-tokens", "300", "--no-clusters", "--quiet"])
    assert code == 0
    assert not (out / "clusters.html").exists()
    assert not (out / "data" / "points.csv").exists()
    assert not (out / "data" / "clusters.csv").exists()
    assert "clusters.html" not in (out / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("flags, message", [
    (["--max-points", "0"], "--max-points must be at least 1"),
    (["--clusters", "5", "--distance-threshold", "2"], "not both"),
    (["--min-cluster-size", "0"], "--min-cluster-size must be at least 1"),
])
def test_bad_cluster_flags_end_in_one_line(flags: list[str], message: str, tiny_model: Path,
                                           tiny_corpus: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    code = main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                 *flags])
    error = capsys.readouterr().err
    assert code == 1
    assert error.count("\n") == 1 and error.startswith("reportgen: error: ") and message in error
    assert not out.exists()


def test_too_short_a_text_for_a_map_still_gets_a_report(tiny_model: Path, tiny_corpus: Path,
                                                        tmp_path: Path) -> None:
    text = tmp_path / "short.txt"
    text.write_text("the\n", encoding="utf-8")  # the tokens `the` and `<eos>`
    out = build_report(ReportConfig(tiny_model, tmp_path / "report", data=tiny_corpus,
                                    text=text, quiet=True))
    assert not (out / "clusters.html").exists()
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "2 tokens are too few for t-SNE maps" in index
