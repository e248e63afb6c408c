"""The number-unit finder: its attribution screen against a finite difference, its exact
ablation against stepped `nn.LSTMCell`s with the unit zeroed, and, on the demo model, a planted
number unit that beats every random control."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from stepwise import stepped_verb_log_probs

from reportgen.analysis.agreement import analyse_agreement
from reportgen.analysis.number_units import find_number_units
from reportgen.inputs.agreement_suites import NOUN_PP, built_in_suite
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import vocabulary_from_folder


def noun_pp_items(corpus: Path, per_condition: int):
    words = vocabulary_from_folder(corpus).words
    items = [item for item in built_in_suite(words, 0, per_condition).items
             if item.task == NOUN_PP]
    return items, words


def stepped_margins(model, items, words, unit: tuple[int, int] | None = None,
                    scale: float = 0.0) -> np.ndarray:
    """log p(correct) - log p(wrong) per item, (N,), from `stepwise.stepped_verb_log_probs`."""
    log_p = stepped_verb_log_probs(model, items, words, unit, scale)  # (N, 2)
    return log_p[:, 0] - log_p[:, 1]


@pytest.fixture(scope="module")
def tiny_finder(tiny_corpus: Path, tiny_model: Path):
    items, words = noun_pp_items(tiny_corpus, 15)
    model = load_checkpoint(tiny_model).model
    means = {1: np.full(model.nhid, 0.05), 2: np.full(model.nhid, -0.05)}
    found = find_number_units(model, items, words, means, seed=4, device="cpu", top=5,
                              controls=10)
    return model, items, words, found


def test_the_screen_is_the_first_order_effect_of_shrinking_the_unit(tiny_finder) -> None:
    model, items, words, found = tiny_finder
    incongruent = [item for item in items if item.condition in ("SP", "PS")]
    base = stepped_margins(model, incongruent, words)
    eps = 1e-3
    for i in [int(np.argmax(found.screen)), int(np.argmin(found.screen)), 3, 30]:
        unit = (int(found.layer[i]), int(found.unit[i]))
        shrunk = stepped_margins(model, incongruent, words, unit, 1 - eps)
        finite_difference = (base - shrunk).mean() / eps  # drop per unit of zeroing, per item
        assert found.screen[i] == pytest.approx(finite_difference, rel=0.02, abs=1e-4), unit


def test_exact_ablation_equals_stepped_cells_with_the_unit_zeroed(tiny_finder) -> None:
    model, items, words, found = tiny_finder
    ablated = [i for i, role in enumerate(found.role) if role]
    assert sum(role == "top" for role in found.role) == 5
    assert sum(role == "control" for role in found.role) == 10
    assert len(found.unit) == 2 * model.nhid  # every h unit of both layers was screened
    for i in ablated[:2] + ablated[-2:]:
        unit = (int(found.layer[i]), int(found.unit[i]))
        right = stepped_margins(model, items, words, unit, 0.0) > 0
        for c, condition in enumerate(found.conditions):
            members = [k for k, item in enumerate(items) if item.condition == condition]
            assert found.zero_accuracy[i, c] == pytest.approx(right[members].mean(), abs=1e-9)
    assert np.isnan(found.zero_accuracy[[i for i, role in enumerate(found.role) if not role]]
                    ).all()
    for value, drop in ((found.spearman, found.margin_drop), (found.spearman_accuracy, found.drop)):
        if np.ptp(drop[ablated]) == 0:  # a model that loses nothing to any ablation ranks nothing
            assert np.isnan(value)
        else:
            assert value == pytest.approx(spearmanr(found.screen[ablated], drop[ablated]).statistic)
    unit = (int(found.layer[ablated[0]]), int(found.unit[ablated[0]]))
    incongruent = [item for item in items if item.condition in ("SP", "PS")]
    exact = (stepped_margins(model, incongruent, words)
             - stepped_margins(model, incongruent, words, unit, 0.0)).mean()
    assert found.margin_drop[ablated[0]] == pytest.approx(exact, abs=1e-4)


def test_the_finder_baseline_is_the_agreement_accuracy(tiny_finder) -> None:
    model, items, words, found = tiny_finder
    from reportgen.inputs.agreement_suites import AgreementSuite
    result = analyse_agreement(model, [AgreementSuite("s", items)], words, device="cpu")
    accuracy = {score.condition: score.accuracy for score in result.scores}
    assert [accuracy[c] for c in found.conditions] == pytest.approx(list(found.baseline))
    again = find_number_units(model, items, words, None, seed=4, device="cpu", top=5,
                              controls=10)
    assert again.role == found.role and np.isnan(again.mean_accuracy).all()


@pytest.mark.slow
def test_the_demo_model_agrees_and_has_a_number_unit_beating_every_control(
        demo_model: tuple[Path, Path]) -> None:
    corpus, checkpoint = demo_model
    items, words = noun_pp_items(corpus, 100)
    model = load_checkpoint(checkpoint).model
    found = find_number_units(model, items, words, None, seed=0, device="cpu")
    incongruent = found.pooled(found.baseline)
    assert incongruent >= 0.9, found.baseline
    assert sum(role == "control" for role in found.role) == 100
    best = int(np.nanargmax(found.drop))
    assert found.role[best] == "top" and found.controls_beaten[best] == 100, (
        found.layer[best], found.unit[best], found.drop[best])
    assert found.spearman > 0.5  # the screen ranks the exact margin drops
