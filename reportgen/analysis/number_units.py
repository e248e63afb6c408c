"""The number-unit finder (DESIGN.md 3.6, after Lakretz et al. 2019): which units carry the
subject's number across an attractor, found by ablation on the noun-PP template.

Ablating every unit exactly costs a pass over the items per unit, so it runs in two steps:
- a screen of every h unit of every layer by attribution: gradient x (ablated - actual h) of
  log p(correct) - log p(wrong), summed over the positions and the incongruent items, from one
  backward pass per batch; its score is the estimated drop of that margin per item;
- exact ablation of the TOP_UNITS best screened units and CONTROL_UNITS random others, seeded:
  Lakretz's zero-ablation (the unit's h set to 0 after every step, so 0 is what it feeds back,
  what the layer above reads and, in the top layer, what the decoder reads), and mean-ablation
  (held at its mean over the analysed text, as on the unit pages).
A unit's drop is its incongruent accuracy lost under zero-ablation; it is ranked among the
controls' drops, and the screen is judged by its Spearman correlation with the drop.

LSTM only: the gates and the cell state are what the unit section shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from scipy.stats import spearmanr

from reportgen.analysis.agreement import item_ids, verb_log_probs
from reportgen.capture.core import StateKey, single_layer_modules
from reportgen.inputs.agreement_suites import FORM, AgreementItem
from reportgen.inputs.model import RNNModel, resolve_device

TOP_UNITS = 50
CONTROL_UNITS = 100
ITEMS_PER_CONDITION = 100  # finder items per condition: 150 ablations x 2 kinds run over them
PROFILED_UNITS = 5  # units whose c and gates are averaged along the template, by drop
PAGED_NUMBER_UNITS = 5  # number units that beat every control get a unit page, at most this many
BATCH_ROWS = 4096  # item copies per ablation pass
DECODER_ROWS = 512  # rows of one (rows, V) log-softmax block
QUANTITIES = ("c", "i", "f", "o")  # cell state and input, forget and output gates


@dataclass
class UnitProfile:
    """What one unit does along the template, per condition (Lakretz et al.'s Figure 1)."""

    layer: int  # 1-based
    unit: int
    values: dict[str, np.ndarray]  # quantity -> (C, S) mean over each condition's items
    verb_weights: list[tuple[str, str, float]]  # top layer: (singular, plural, W_s,u - W_p,u)


@dataclass
class NumberUnitResult:
    """The screen of every h unit, and exact ablations of the top and control units.

    Units are in (layer, unit) order, U of them; a condition column c is `conditions[c]`.
    """

    task: str
    conditions: list[str]  # e.g. SS, SP, PS, PP
    positions: list[str]  # S slot names along the template, "<eos>" first
    n_items: np.ndarray  # (C,) int64
    baseline: np.ndarray  # (C,) float64 accuracy of the intact model
    layer: np.ndarray  # (U,) int64, 1-based
    unit: np.ndarray  # (U,) int64
    screen: np.ndarray  # (U,) float64 estimated drop of the margin, nats per item
    role: list[str]  # (U,) "top", "control" or "" (screened only)
    zero_accuracy: np.ndarray  # (U, C) float64 accuracy under zero-ablation; NaN: not ablated
    mean_accuracy: np.ndarray  # (U, C) float64 under mean-ablation; NaN: not ablated or no mean
    baseline_margin: np.ndarray  # (C,) mean log p(correct) - log p(wrong), intact
    zero_margin: np.ndarray  # (U, C) the same under zero-ablation; NaN: not ablated
    seed: int
    # Spearman over the ablated units of the screen against what it estimates, the exact
    # margin drop; and against the accuracy drop, which is mostly ties when accuracy is near 1
    spearman: float
    spearman_accuracy: float
    profiles: list[UnitProfile]

    @property
    def incongruent(self) -> np.ndarray:
        """(C,) bool: the conditions whose two nouns differ in number."""
        return np.array([len(set(c)) > 1 for c in self.conditions])

    def pooled(self, accuracy: np.ndarray) -> np.ndarray:
        """Incongruent accuracy over the pooled items, (...,) from accuracies (..., C)."""
        weights = self.n_items * self.incongruent
        return (accuracy * weights).sum(axis=-1) / weights.sum()

    @property
    def drop(self) -> np.ndarray:
        """(U,) incongruent accuracy lost under zero-ablation; NaN where not ablated."""
        return self.pooled(self.baseline) - self.pooled(self.zero_accuracy)

    @property
    def margin_drop(self) -> np.ndarray:
        """(U,) incongruent mean margin lost under zero-ablation, nats; NaN where not ablated."""
        return self.pooled(self.baseline_margin) - self.pooled(self.zero_margin)

    @property
    def controls_beaten(self) -> np.ndarray:
        """(U,) how many controls' drops each top unit's drop exceeds; -1 for the others."""
        controls = self.drop[[r == "control" for r in self.role]]
        return np.array([int((controls < d).sum()) if r == "top" else -1
                         for d, r in zip(self.drop, self.role)])

    def top_by_drop(self) -> list[int]:
        """Indices of the top units, the largest incongruent accuracy drop first."""
        order = np.argsort(-np.nan_to_num(self.drop, nan=-np.inf), kind="stable")
        return [int(i) for i in order if self.role[i] == "top"]

    def number_units(self, limit: int = PAGED_NUMBER_UNITS) -> list[tuple[StateKey, int]]:
        """The top units whose zero-ablation costs more incongruent accuracy than every random
        control's, largest drop first, at most `limit`: the ones that get a unit page."""
        n_controls = sum(role == "control" for role in self.role)
        beaten = self.controls_beaten
        found = [((int(self.layer[i]), "h"), int(self.unit[i])) for i in self.top_by_drop()
                 if n_controls and beaten[i] == n_controls]
        return found[:limit]


class Stack:
    """An LSTM's layers stepped by hand, so that a unit's h can be held after every step and
    the gates recorded; each layer keeps its own width."""

    def __init__(self, model: RNNModel, device: torch.device) -> None:
        self.device = device
        self.embedding = model.encoder.weight.detach().to(device)  # (V, E)
        self.layers = [(layer.weight_ih_l0.detach(), layer.weight_hh_l0.detach(),
                        (layer.bias_ih_l0 + layer.bias_hh_l0).detach())
                       for layer in single_layer_modules(model, device)]
        self.widths = [w_hh.shape[1] for _, w_hh, _ in self.layers]
        self.weight = model.decoder.weight.detach().to(device)  # (V, H_top)
        self.bias = model.decoder.bias.detach().to(device)  # (V,)

    def run(self, ids: torch.Tensor, held: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
            record: dict[str, list[torch.Tensor]] | None = None,
            track: list[list[torch.Tensor]] | None = None) -> torch.Tensor:
        """The top layer's last h, (B, H_top), over ids (S, B) from a zero state. `held[l]`:
        a mask and values (B, H_l) set into h after each step; `record`: quantity -> per layer
        (S, B, H_l); `track`: per layer, each step's h with its gradient retained."""
        x = nn.functional.embedding(ids.to(self.device), self.embedding)  # (S, B, E)
        if track is not None:
            x.requires_grad_(True)
        for l, (w_ih, w_hh, bias) in enumerate(self.layers):
            from_input = x @ w_ih.T + bias  # (S, B, 4H)
            h = torch.zeros(ids.shape[1], self.widths[l], device=self.device)  # (B, H)
            c = torch.zeros_like(h)
            steps, kept = [], {name: [] for name in QUANTITIES}
            for t in range(len(ids)):
                i, f, g, o = (from_input[t] + h @ w_hh.T).chunk(4, dim=1)  # each (B, H)
                i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
                c = f * c + i * torch.tanh(g)
                h = o * torch.tanh(c)
                if held is not None:
                    h = torch.where(held[l][0], held[l][1], h)
                if track is not None:
                    h.retain_grad()
                    track[l].append(h)
                for name, value in zip(QUANTITIES, (c, i, f, o)):
                    kept[name].append(value)
                steps.append(h)
            if record is not None:
                for name in QUANTITIES:
                    record.setdefault(name, []).append(torch.stack(kept[name]))
            x = torch.stack(steps)  # (S, B, H)
        return x[-1]

    def margins(self, h: torch.Tensor, correct: torch.Tensor, wrong: torch.Tensor
                ) -> torch.Tensor:
        """log p(correct) - log p(wrong), (B,), in blocks of DECODER_ROWS rows."""
        out = []
        for start in range(0, len(h), DECODER_ROWS):
            rows = slice(start, start + DECODER_ROWS)
            good, bad = verb_log_probs(self.weight, self.bias, h[rows], correct[rows], wrong[rows])
            out.append(good - bad)
        return torch.cat(out)


def finder_items(items: list[AgreementItem],
                 per_condition: int = ITEMS_PER_CONDITION) -> list[AgreementItem]:
    """The first `per_condition` items of each condition: the exact ablations cost a pass over
    every item per unit and kind, and 100 items per condition already rank the drops."""
    taken: dict[str, int] = {}
    kept = []
    for item in items:
        if taken.get(item.condition, 0) < per_condition:
            taken[item.condition] = taken.get(item.condition, 0) + 1
            kept.append(item)
    return kept


def screen_units(stack: Stack, ids: torch.Tensor, correct: torch.Tensor, wrong: torch.Tensor
                 ) -> list[np.ndarray]:
    """Per layer, (H_l,) estimated drop of the margin per item when the unit's h is zeroed.

    To first order, zeroing changes the margin by grad x (0 - h) at each step, so the drop
    is the sum over items and steps of grad x h, divided by the items."""
    track: list[list[torch.Tensor]] = [[] for _ in stack.layers]
    margin = stack.margins(stack.run(ids, track=track), correct, wrong).sum()
    margin.backward()
    return [(sum((step.grad * step).sum(dim=0) for step in steps) / ids.shape[1]
             ).detach().double().cpu().numpy() for steps in track]


def finder_tensors(items: list[AgreementItem], words: list[str]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    index = {word: i for i, word in enumerate(words)}
    return (item_ids(items, index), torch.tensor([index[item.correct] for item in items]),
            torch.tensor([index[item.wrong] for item in items]))


def ablated_accuracy(stack: Stack, ids: torch.Tensor, correct: torch.Tensor,
                     wrong: torch.Tensor, condition: np.ndarray, n_conditions: int,
                     units: list[tuple[int, int] | None], values: list[float]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean margin per condition, (K, C) each, with unit k's h held at
    values[k] (None: nothing held); as many copies run in one pass as BATCH_ROWS allows."""
    n = ids.shape[1]
    per_pass = max(1, BATCH_ROWS // n)
    accuracy = np.zeros((len(units), n_conditions))
    margin = np.zeros((len(units), n_conditions))
    for start in range(0, len(units), per_pass):
        chosen = units[start:start + per_pass]
        k = len(chosen)
        held = [(torch.zeros(k * n, width, dtype=torch.bool, device=stack.device),
                 torch.zeros(k * n, width, device=stack.device)) for width in stack.widths]
        for copy, held_unit in enumerate(chosen):
            if held_unit is None:
                continue
            layer, unit = held_unit
            rows = slice(copy * n, (copy + 1) * n)
            held[layer - 1][0][rows, unit] = True
            held[layer - 1][1][rows, unit] = values[start + copy]
        with torch.inference_mode():
            h = stack.run(ids.repeat(1, k), held)  # (K n, H_top)
            margins = stack.margins(h, correct.repeat(k), wrong.repeat(k)).view(k, n)
        margins = margins.double().cpu().numpy()  # (K, n)
        for c in range(n_conditions):
            accuracy[start:start + k, c] = (margins[:, condition == c] > 0).mean(axis=1)
            margin[start:start + k, c] = margins[:, condition == c].mean(axis=1)
    return accuracy, margin


def find_number_units(model: RNNModel, items: list[AgreementItem], words: list[str],
                      means: dict[int, np.ndarray] | None = None, seed: int = 0,
                      device: str = "auto", top: int = TOP_UNITS,
                      controls: int = CONTROL_UNITS) -> NumberUnitResult:
    """Screen, ablate and profile on `items`, all of one task and prefix length; `means[l]`
    (H_l,) is layer l's h mean over the text, for the mean-ablation (None: zero only)."""
    stack = Stack(model, resolve_device(device))
    conditions = sorted({item.condition for item in items}, key=lambda c: [FORM[x] for x in c])
    condition = np.array([conditions.index(item.condition) for item in items])  # (N,)
    ids, correct, wrong = finder_tensors(items, words)
    baseline, baseline_margin = ablated_accuracy(stack, ids, correct, wrong, condition,
                                                 len(conditions), [None], [0.0])
    baseline, baseline_margin = baseline[0], baseline_margin[0]  # (C,) each: nothing held
    incongruent = np.array([len(set(conditions[c])) > 1 for c in condition])
    scores = screen_units(stack, ids[:, incongruent], correct[incongruent], wrong[incongruent])
    layer = np.concatenate([np.full(w, l + 1) for l, w in enumerate(stack.widths)])  # (U,)
    unit = np.concatenate([np.arange(w) for w in stack.widths])  # (U,)
    screen = np.concatenate(scores)  # (U,)
    order = np.argsort(-screen, kind="stable")
    chosen_top = order[:top]
    rest = order[top:]
    rng = np.random.default_rng(seed)
    chosen_controls = np.sort(rng.choice(rest, size=min(controls, len(rest)), replace=False))
    role = [""] * len(unit)
    for i in chosen_top:
        role[i] = "top"
    for i in chosen_controls:
        role[i] = "control"
    ablated = np.concatenate([chosen_top, chosen_controls])
    pairs = [(int(layer[i]), int(unit[i])) for i in ablated]
    zero = np.full((len(unit), len(conditions)), np.nan)
    zero_margin = np.full_like(zero, np.nan)
    zero[ablated], zero_margin[ablated] = ablated_accuracy(
        stack, ids, correct, wrong, condition, len(conditions), pairs, [0.0] * len(pairs))
    mean = np.full_like(zero, np.nan)
    if means is not None:
        mean[ablated] = ablated_accuracy(stack, ids, correct, wrong, condition, len(conditions),
                                         pairs, [float(means[l][u]) for l, u in pairs])[0]
    result = NumberUnitResult(
        task=items[0].task, conditions=conditions,
        positions=["<eos>", *slot_names(len(items[0].prefix))],
        n_items=np.bincount(condition, minlength=len(conditions)), baseline=baseline,
        layer=layer, unit=unit, screen=screen, role=role, zero_accuracy=zero,
        mean_accuracy=mean, baseline_margin=baseline_margin, zero_margin=zero_margin,
        seed=seed, spearman=float("nan"), spearman_accuracy=float("nan"), profiles=[])
    result.spearman = rank_correlation(screen[ablated], result.margin_drop[ablated])
    result.spearman_accuracy = rank_correlation(screen[ablated], result.drop[ablated])
    profiled = chosen_top[np.argsort(-result.drop[chosen_top], kind="stable")[:PROFILED_UNITS]]
    result.profiles = profiles(stack, ids, condition, len(conditions), items, words,
                               [(int(layer[i]), int(unit[i])) for i in profiled])
    return result


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of a and b (K,), NaN when either is constant (no ranking to compare):
    a model that has learned no agreement loses nothing to any ablation."""
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def slot_names(length: int) -> list[str]:
    """The noun-PP template's slots, `The N PREP the N2`, or word numbers for other lengths."""
    names = ["The", "N", "PREP", "the", "N2"]
    return names if length == len(names) else [f"w{i + 1}" for i in range(length)]


def profiles(stack: Stack, ids: torch.Tensor, condition: np.ndarray, n_conditions: int,
             items: list[AgreementItem], words: list[str],
             units: list[tuple[int, int]]) -> list[UnitProfile]:
    """c and the i, f, o gates of each unit, averaged per condition at each position, and
    for top-layer units the decoder's singular-minus-plural weight for each verb pair."""
    record: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        stack.run(ids, record=record)
    verbs = sorted({(item.correct, item.wrong) for item in items if item.condition[0] == "S"})
    top_layer = len(stack.widths)
    found = []
    for layer, unit in units:
        values = {}
        for name in QUANTITIES:
            trace = record[name][layer - 1][:, :, unit].double().cpu().numpy()  # (S, N)
            values[name] = np.stack([trace[:, condition == c].mean(axis=1)
                                     for c in range(n_conditions)])  # (C, S)
        found.append(UnitProfile(layer, unit, values,
                                 verb_weights(stack, words, verbs, unit)
                                 if layer == top_layer else []))
    return found


def verb_weights(stack: Stack, words: list[str], verbs: list[tuple[str, str]],
                 unit: int) -> list[tuple[str, str, float]]:
    """(singular, plural, W[singular, unit] - W[plural, unit]) for each verb pair: positive
    when the unit's h pushes the decoder toward the singular form."""
    index = {word: i for i, word in enumerate(words)}
    return [(singular, plural, float(stack.weight[index[singular], unit]
                                     - stack.weight[index[plural], unit]))
            for singular, plural in verbs]
