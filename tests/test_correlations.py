"""Correlated units against `np.corrcoef` over every unit of every layer and state."""

from __future__ import annotations

import numpy as np
from captures import make_capture

from reportgen.analysis.correlations import analyse_correlations


def correlated_states(seed: int = 0) -> dict[tuple[int, str], np.ndarray]:
    """Three layer-states of 1,000 positions whose units share a few hidden sources, so that
    strong positive and negative correlations exist across states; one unit is constant and one
    sits far from zero."""
    rng = np.random.default_rng(seed)
    sources = rng.normal(size=(1000, 4))
    states = {}
    for key, width in (((1, "h"), 6), ((1, "c"), 5), ((2, "h"), 7)):
        mix = rng.normal(size=(4, width))
        states[key] = (sources @ mix + 0.5 * rng.normal(size=(1000, width))).astype(np.float32)
    states[(1, "c")][:, 2] = 0.25
    states[(1, "h")][:, 4] += 30.0  # a cell far from zero: its moments must not cancel
    return states


def test_partners_match_corrcoef() -> None:
    states = correlated_states()
    captured = make_capture(states)
    units = {(1, "h"): [0, 4], (2, "h"): [6], (1, "c"): [2]}
    result = analyse_correlations(captured, units, top=3, chunk=128)
    everything = np.concatenate([states[k] for k in captured.keys], axis=1)  # (T, 18)
    with np.errstate(invalid="ignore", divide="ignore"):
        reference = np.corrcoef(everything, rowvar=False)  # (18, 18)
    names = [(k, u) for k in captured.keys for u in range(states[k].shape[1])]
    for key, paged in units.items():
        for unit in paged:
            row = reference[names.index((key, unit))]
            positive, negative = result.partners(key, unit)
            if key == (1, "c") and unit == 2:
                assert positive == [] and negative == []  # a constant unit correlates with none
                continue
            others = [(names[j], row[j]) for j in range(len(names))
                      if names[j] != (key, unit) and np.isfinite(row[j])]
            best = sorted(others, key=lambda item: -item[1])[:3]
            worst = sorted(others, key=lambda item: item[1])[:3]
            assert [(k, u) for k, u, _ in positive] == [n for n, _ in best if _ > 0]
            assert [(k, u) for k, u, _ in negative] == [n for n, _ in worst if _ < 0]
            np.testing.assert_allclose([r for *_, r in positive], [r for _, r in best if r > 0],
                                       atol=1e-5)
            np.testing.assert_allclose([r for *_, r in negative], [r for _, r in worst if r < 0],
                                       atol=1e-5)
            assert negative  # the mixed sources give every unit a negative partner here


def test_top_partner_names_for_neurons_csv() -> None:
    states = correlated_states(1)
    states[(2, "h")][:, 3] = -2 * states[(1, "h")][:, 1] + 0.01
    states[(1, "c")][:, 0] = 3 * states[(1, "h")][:, 1]
    result = analyse_correlations(make_capture(states), {(1, "h"): [1]})
    name, r = result.top_partner_names((1, "h"))[1]
    assert name == "L1-c-0000" and abs(r - 1) < 1e-5
    assert result.partners((1, "h"), 1)[1][0][:2] == ((2, "h"), 3)
