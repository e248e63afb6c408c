"""Chart builders: the Vega-Lite each one produces, checked through to_dict()."""

import json
import math

import numpy as np
import pytest

from reportgen.analysis.concepts import NeuronConcepts
from reportgen.analysis.distributions import analyse_state
from reportgen.charts import (
    MAX_BARS,
    average_distribution_chart,
    binned_records,
    concept_auroc_chart,
    histogram_domain,
    kl_scatter_chart,
)
from reportgen.charts.maps import CLUSTER_COLOURS, cluster_palette, hex_rgb, lab
from reportgen.render.pages import ChartSpec


def hidden_stats_values() -> np.ndarray:
    rng = np.random.default_rng(0)
    values = np.tanh(rng.normal(0, rng.uniform(0.2, 2, 6), (500, 6))).astype(np.float32)
    values[:, 2] = 5.0  # every value outside [-1, 1]: all in the upper overflow bin
    return values  # (500, 6)


@pytest.fixture(scope="module")
def hidden_stats():
    return analyse_state((1, "h"), hidden_stats_values())


def spec_of(chart):
    spec = chart.to_dict()
    json.dumps(spec, allow_nan=False)  # a page cannot hold NaN
    return spec


def test_average_chart_has_one_bar_per_bin_of_h(hidden_stats):
    spec = spec_of(average_distribution_chart(hidden_stats.edges, hidden_stats.average, "L1-h"))
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["field"] == "start" and spec["encoding"]["x2"]["field"] == "end"
    assert spec["encoding"]["y"]["field"] == "share" and spec["encoding"]["y2"]["datum"] == 0
    rows = spec["data"]["values"]
    assert len(rows) == 200
    assert [row["share"] for row in rows] == pytest.approx(list(hidden_stats.average))
    assert rows[0]["start"] == pytest.approx(-1.0) and rows[-1]["end"] == pytest.approx(1.0)
    assert "L1-h" in spec["title"]


def test_wide_cell_histogram_is_merged_to_at_most_max_bars():
    values = np.random.default_rng(1).normal(0, 4, (2000, 3)).astype(np.float32)
    stats = analyse_state((2, "c"), values)
    assert len(stats.average) > MAX_BARS
    rows = spec_of(stats.average_chart())["data"]["values"]
    assert len(rows) <= MAX_BARS
    assert sum(row["share"] for row in rows) == pytest.approx(stats.average.sum())
    assert all(a["end"] == b["start"] for a, b in zip(rows, rows[1:]))


def test_binned_records_merge_adjacent_bins():
    edges = np.linspace(0, 1, 11)
    rows = binned_records(edges, {"s": np.arange(10.0)}, max_bars=4)
    # Field by field: pytest.approx compares flat sequences of numbers only (9.2 refuses nesting).
    assert len(rows) == 4
    assert [row["start"] for row in rows] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert [row["end"] for row in rows] == pytest.approx([0.3, 0.6, 0.9, 1.0])
    assert [row["share"] for row in rows] == pytest.approx([3.0, 12.0, 21.0, 9.0])


def test_neuron_chart_draws_the_neuron_against_the_average(hidden_stats):
    spec = spec_of(hidden_stats.neuron_chart(4))  # the builder, as the neuron pages call it
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["color"]["field"] == "series"
    assert spec["encoding"]["y2"]["datum"] == 0
    assert spec["transform"] == [{"flatten": ["start", "end", "share"]}]
    rows = [{"series": record["series"], "start": start, "end": end, "share": share}
            for record in spec["data"]["values"]
            for start, end, share in zip(record["start"], record["end"], record["share"],
                                         strict=True)]  # as the flatten makes them
    assert {row["series"] for row in rows} == {"neuron 4", "average"}
    low, high = spec["encoding"]["x"]["scale"]["domain"]
    every = np.stack([np.histogram(values, bins=200, range=(-1, 1))[0] / 500
                      for values in hidden_stats_values().T])  # (6, 200) shares of all 500 values
    for series, shares in (("neuron 4", every[4]), ("average", every.mean(axis=0))):
        starts = np.round(hidden_stats.edges[:-1], 6)
        shown = (shares > 0) & (starts + 0.01 > low) & (starts < high)  # empty bars are left out
        drawn = {row["start"]: row["share"] for row in rows if row["series"] == series}
        assert sorted(drawn) == pytest.approx(starts[shown].tolist())
        np.testing.assert_allclose([drawn[start] for start in sorted(drawn)], shares[shown])


def test_kl_scatter_has_one_point_per_neuron_with_tooltips(hidden_stats):
    labels = ["", "in_quotes:0.950 in_parens:0.920", "", "", "", ""]
    kl_p_q = hidden_stats.kl_p_q.copy()
    kl_p_q[2] = np.nan  # a figure the chart cannot draw is written as null
    spec = spec_of(kl_scatter_chart("L1-h", hidden_stats.rank, kl_p_q,
                                    hidden_stats.kl_q_p, hidden_stats.near_zero, labels))
    assert spec["mark"]["type"] == "point"
    assert spec["encoding"]["x"]["field"] == "kl_p_q" and spec["encoding"]["y"]["field"] == "kl_q_p"
    assert "nats" in spec["encoding"]["x"]["title"]
    assert spec["encoding"]["color"]["field"] == "kind"
    tooltip = {item["field"]: item["title"] for item in spec["encoding"]["tooltip"]}
    assert {"neuron", "labels", "kind", "kl_p_q", "kl_q_p"} <= set(tooltip)
    assert all(title != field for field, title in tooltip.items() if "_" in field)
    rows = spec["data"]["values"]
    assert len(rows) == hidden_stats.n_neurons
    assert rows[1]["labels"] == labels[1] and rows[1]["kind"] == "labelled"
    assert rows[0]["kind"] == "unlabelled" and rows[0]["labels"] == "none"
    assert rows[2]["kl_p_q"] is None
    assert rows[0]["kl_p_q"] == pytest.approx(hidden_stats.kl_p_q[0])
    assert spec_of(hidden_stats.kl_chart())["data"]["values"][1]["kind"] != "labelled"


def test_concept_chart_has_one_bar_per_feature_from_chance_and_the_thresholds():
    auroc = np.array([[0.95, np.nan, 0.3], [0.5, 0.5, 0.5]])
    within = np.array([[0.9, np.nan, np.nan], [0.5, 0.5, 0.5]])
    concepts = NeuronConcepts((1, "c"), ("a", "b", "c"), auroc, within,
                              np.array([False, False, True]), [(("a", 0.95),), ()])
    spec = spec_of(concept_auroc_chart(concepts.features, auroc[0], within[0], concepts.name, 0,
                                       threshold=0.4))
    bars, ticks, rules = spec["layer"]
    assert bars["mark"]["type"] == "bar" and ticks["mark"]["type"] == "tick"
    assert bars["encoding"]["x"]["field"] == "feature" and bars["encoding"]["y"]["field"] == "auroc"
    assert bars["encoding"]["y2"]["datum"] == 0.5 and ticks["encoding"]["y"]["field"] == "within"
    assert bars["data"]["values"] == [
        {"feature": "a", "auroc": 0.95, "within": 0.9}, {"feature": "b", "auroc": None, "within": None},
        {"feature": "c", "auroc": 0.3, "within": None},
    ]
    assert [row["at"] for row in rules["data"]["values"]] == pytest.approx([0.1, 0.9])
    assert spec_of(concepts.chart(1))["layer"][0]["data"]["values"][0]["auroc"] == 0.5


def test_histogram_domain_clips_to_the_neurons_values():
    edges = np.linspace(-3, 3, 601)
    shares = np.zeros(600)
    shares[150:450] = 1  # values in [-1.5, 1.5)
    assert histogram_domain(edges, shares) == [-1.8, 1.8]
    assert histogram_domain(edges, np.zeros(600)) == [-3.0, 3.0]
    shares = np.zeros(600)
    shares[0] = shares[-1] = 1  # both ends: the whole interval, never beyond it
    assert histogram_domain(edges, shares) == [-3.0, 3.0]


def test_chart_numbers_keep_four_significant_digits_and_every_whole_digit():
    spec = ChartSpec("x", {"data": {"values": [
        {"share": 1.85486059500049e-05, "x": -17.8912, "position": 123456, "big": 123456.789,
         "zero": 0.0, "nan": float("nan"), "name": "0.123456"}]}, "domain": [-2.4049, 2.4049]})
    row = spec.spec["data"]["values"][0]
    assert row["share"] == 1.855e-05 and row["x"] == -17.89 and row["big"] == 123457.0
    assert row["position"] == 123456 and isinstance(row["position"], int)  # ints as they were
    assert row["zero"] == 0.0 and math.isnan(row["nan"]) and row["name"] == "0.123456"
    assert spec.spec["domain"] == [-2.405, 2.405]


@pytest.mark.parametrize("n", [20, 40, 80, 160])
def test_the_cluster_palette_gives_each_cluster_of_a_cut_its_own_colour(n: int) -> None:
    """No colour repeats up to the largest cut, and the colours added to the first 20 stay
    clearly apart (CIELAB distance over 10; 2.3 is the least a reader can see)."""
    colours = cluster_palette(n)
    assert len(colours) == n and len(set(colours)) == n
    assert colours[:20] == list(CLUSTER_COLOURS)
    points = lab(hex_rgb(colours))
    distance = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(distance, np.inf)
    assert distance[20:].min(initial=np.inf) > 10
    assert lab(hex_rgb(["#ffffff"]))[0, 0] == pytest.approx(100, abs=0.1)  # white is L* 100
