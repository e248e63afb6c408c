"""The expectancy colour scale: log10 p by default, linear p on request, legends in the cells'
own colours, and the most surprising tokens linked to their place."""

import dataclasses
import math

import numpy as np
import pytest
from captures import make_capture
from expectancy_pages import tip_text

from reportgen.render.heatmap import (
    LOG_FLOOR,
    colour_shares,
    expectancy_cells,
    expectancy_legend,
    expectancy_tips,
    most_surprising,
    scale_position,
    sequential_color,
    token_probabilities,
)


def test_the_log_scale_puts_each_decade_of_p_one_step_further():
    assert scale_position(10.0 ** LOG_FLOOR) == 0.0 and scale_position(1.0) == 1.0
    assert scale_position(1e-7) == 0.0 and scale_position(0.0) == 0.0
    steps = [scale_position(10.0 ** e) for e in range(int(LOG_FLOOR), 1)]
    assert np.allclose(np.diff(steps), 1 / -LOG_FLOOR)
    assert scale_position(0.3, "linear") == 0.3
    assert math.isnan(scale_position(math.nan))


def test_a_real_models_spread_of_p_fills_the_log_scale_but_not_the_linear_one():
    """log10 p roughly uniform over [-5, 0], as a real model's words are, and most p < 0.05."""
    probs = 10.0 ** np.random.default_rng(0).uniform(-5, 0, 10_000)
    assert colour_shares(probs, "log").max() < 0.12
    assert colour_shares(probs, "linear").max() > 0.7
    assert colour_shares(np.array([np.nan, 0.5]), "linear").tolist() == [0] * 5 + [1] + [0] * 4


def capture_with_probs(probs):
    tokens = [f"w{i}" for i in range(len(probs) + 1)]
    capture = make_capture({(1, "h"): np.zeros((len(tokens), 2), np.float32)}, tokens)
    log_prob_next = np.log(np.append(probs, np.nan)).astype(np.float32)
    return dataclasses.replace(capture, log_prob_next=log_prob_next)


def test_cells_take_the_colour_of_their_place_on_the_scale():
    capture = capture_with_probs(np.array([1e-4, 0.01, 0.9]))
    for scale in ("log", "linear"):
        cells = expectancy_cells(capture, 0, 4, scale)
        assert cells[0].color == "transparent"  # the first token is not predicted
        for cell, p in zip(cells[1:], token_probabilities(capture)[1:]):
            assert cell.color == sequential_color(scale_position(p, scale))[0]
    assert expectancy_cells(capture, 1, 2, "log")[0].color != expectancy_cells(capture, 1, 2,
                                                                               "linear")[0].color


def test_legend_ticks_sit_where_the_cells_of_those_p_are():
    legend = expectancy_legend("log")
    assert [label for _, label in legend.ticks] == ["10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "1"]
    assert [at for at, _ in legend.ticks] == pytest.approx([0, 20, 40, 60, 80, 100])
    assert legend.gradient.startswith("linear-gradient(to right, #2166ac 0%")
    assert [label for _, label in expectancy_legend("linear").ticks][-1] == "1"


def test_the_most_surprising_tokens_come_lowest_first_with_their_page():
    probs = np.array([0.5, 1e-6, 0.2, 1e-3, 0.9])
    capture = capture_with_probs(probs)
    found = most_surprising(capture, ["expectancy.html", "expectancy-2.html"], 3, count=2)
    assert [(s.position, s.token) for s in found] == [(2, "w2"), (4, "w4")]
    assert found[0].prob == pytest.approx(1e-6, rel=1e-4)
    assert [s.href for s in found] == ["expectancy.html#t2", "expectancy-2.html#t4"]
    assert found[1].context.endswith("w3")


def test_the_tips_table_reads_back_as_the_tooltips_it_replaces():
    """Each page word's tooltip row, read by the format's own rules, says what the spelled-out
    tooltip said, for p above and below 0.001, guesses padded with -1, and <eos>."""
    probs = np.array([0.61234, 1.6037e-5, 0.0009996, 0.15794, 0.0012])
    tokens = ["a", "b", "<eos>", "a", "c", "<eos>"]
    rng = np.random.default_rng(0)
    capture = dataclasses.replace(
        capture_with_probs(probs), tokens=tokens, vocabulary=["a", "b", "c", "<eos>", "d"],
        top_ids=rng.integers(0, 5, size=(6, 5)),
        top_log_probs=np.log(rng.dirichlet(np.ones(6), size=6)[:, :5]).astype(np.float32))
    capture.top_ids[3, 3:] = -1  # fewer guesses than five
    for start, stop in ((0, 6), (2, 5)):
        table = expectancy_tips(capture, start, stop)
        titles = [cell.title for cell in expectancy_cells(capture, start, stop)]
        assert [tip_text(table, row) for row in table["rows"]] == titles
        assert len(table["words"]) == len(set(table["words"]))
    assert titles[0].startswith("<eos>: p = 1.6e-05\n")  # position 2: two significant digits
    assert tip_text(table, table["rows"][2]).count(",") == 2  # three guesses after position 3
