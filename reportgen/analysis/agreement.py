"""Number agreement: each suite's items scored by the model, and accuracy per task and
condition with a 95% Wilson interval (DESIGN.md 3.6; Linzen et al. 2016, Lakretz et al. 2019).

Each prefix is read from a zero state after one `<eos>`, as a line starts in training text, and
an item is right when log p(correct) > log p(wrong) at the next position. Items of one length
run as one batch through torch's own layers, so scoring costs one short forward pass per length
and one decoder row per item.

The Wilson interval, not the normal one: at accuracies near 1 and with the few dozen items a
small vocabulary leaves a condition, p ± 1.96 sqrt(p(1 - p)/n) runs past 1 or shrinks to a
point at p = 1, and claims a certainty the items do not give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from reportgen.capture.core import single_layer_modules
from reportgen.inputs.agreement_suites import AgreementItem, AgreementSuite, congruence
from reportgen.inputs.corpus import EOS
from reportgen.inputs.model import RNNModel, resolve_device

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
CHANCE = 0.5  # two forms, one right
BATCH_ITEMS = 1024  # items per forward pass


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `correct / n`; (nan, nan) when n is 0."""
    if n == 0:
        return math.nan, math.nan
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class ConditionScore:
    """Accuracy of one task and condition of one suite."""

    suite: str
    task: str
    condition: str
    congruence: str | None  # "congruent", "incongruent", or None with one noun
    n: int
    correct: int
    accuracy: float  # nan when n is 0
    ci_low: float
    ci_high: float

    @property
    def verdict(self) -> str:
        """"above chance", "not above chance" (the interval holds 0.5) or "below chance"."""
        if self.ci_low > CHANCE:
            return "above chance"
        return "below chance" if self.ci_high < CHANCE else "not above chance"


@dataclass
class SuiteSummary:
    """What a suite held: items scored per task, items skipped for a word outside the
    vocabulary, and (built-in suite) the lexicon entries the vocabulary lacked."""

    name: str
    n_items: dict[str, int]  # task -> items scored
    skipped: dict[str, int]
    lacking: list[str]


@dataclass
class AgreementResult:
    """Every item's two log ps, and the accuracies they give; item i is `items[i]`."""

    suites: list[SuiteSummary]
    items: list[AgreementItem]
    item_suites: list[str]  # (N,) the suite of each item
    log_p_correct: np.ndarray  # (N,) float64
    log_p_wrong: np.ndarray  # (N,) float64
    scores: list[ConditionScore]
    notes: list[str] = field(default_factory=list)

    @property
    def right(self) -> np.ndarray:
        """(N,) bool: log p(correct) > log p(wrong)."""
        return self.log_p_correct > self.log_p_wrong


def verb_log_probs(weight: torch.Tensor, bias: torch.Tensor, h: torch.Tensor,
                   correct: torch.Tensor, wrong: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(correct) and log p(wrong), (B,) each, from the top layer's h (B, H) and the
    decoder's weight (V, H) and bias (V,): the one place that turns h into log p for the
    agreement analyses, so that a split softmax can take its place."""
    log_p = torch.log_softmax(torch.addmm(bias, h, weight.T), dim=1)  # (B, V)
    return (log_p.gather(1, correct[:, None])[:, 0], log_p.gather(1, wrong[:, None])[:, 0])


def batches_by_length(items: list[AgreementItem]) -> list[np.ndarray]:
    """Indices of items, grouped by prefix length and cut to BATCH_ITEMS, in item order."""
    lengths = np.array([len(item.prefix) for item in items], dtype=np.int64)  # (N,)
    groups = []
    for length in np.unique(lengths):
        chosen = np.flatnonzero(lengths == length)
        groups += [chosen[start:start + BATCH_ITEMS]
                   for start in range(0, len(chosen), BATCH_ITEMS)]
    return groups


def item_ids(items: list[AgreementItem], index: dict[str, int]) -> torch.Tensor:
    """(S + 1, B) ids: `<eos>` then each prefix; the items have one prefix length S."""
    return torch.tensor([[index[EOS], *(index[word] for word in item.prefix)]
                         for item in items], dtype=torch.int64).T


def score_items(model: RNNModel, items: list[AgreementItem], words: list[str],
                device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """log p(correct) and log p(wrong) of each item, (N,) float64 each."""
    where = resolve_device(device)
    index = {word: i for i, word in enumerate(words)}
    layers = single_layer_modules(model, where)
    embedding = model.encoder.weight.detach().to(where)
    weight = model.decoder.weight.detach().to(where)  # (V, H)
    bias = model.decoder.bias.detach().to(where)  # (V,)
    log_p_correct = np.empty(len(items))
    log_p_wrong = np.empty(len(items))
    with torch.inference_mode():
        for batch in batches_by_length(items):
            chosen = [items[i] for i in batch]
            x = nn.functional.embedding(item_ids(chosen, index).to(where), embedding)  # (S, B, E)
            for layer in layers:
                x = layer(x)[0]  # (S, B, H_l), from a zero state
            correct = torch.tensor([index[item.correct] for item in chosen], device=where)
            wrong = torch.tensor([index[item.wrong] for item in chosen], device=where)
            good, bad = verb_log_probs(weight, bias, x[-1], correct, wrong)
            log_p_correct[batch] = good.double().cpu().numpy()
            log_p_wrong[batch] = bad.double().cpu().numpy()
    return log_p_correct, log_p_wrong


def condition_scores(suite_names: list[str], items: list[AgreementItem],
                     right: np.ndarray) -> list[ConditionScore]:
    """Accuracy, n and Wilson interval per suite, task and condition, in first-seen order."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, (suite, item) in enumerate(zip(suite_names, items)):
        groups.setdefault((suite, item.task, item.condition), []).append(i)
    scores = []
    for (suite, task, condition), members in groups.items():
        n, correct = len(members), int(right[members].sum())
        low, high = wilson_interval(correct, n)
        scores.append(ConditionScore(suite, task, condition, congruence(condition), n, correct,
                                     correct / n, low, high))
    return scores


def analyse_agreement(model: RNNModel, suites: list[AgreementSuite], words: list[str],
                      device: str = "auto") -> AgreementResult:
    """Score every suite's items; a suite with no item is still listed, with what it lacked."""
    items = [item for suite in suites for item in suite.items]
    item_suites = [suite.name for suite in suites for _ in suite.items]
    if items:
        good, bad = score_items(model, items, words, device)
    else:
        good, bad = np.zeros(0), np.zeros(0)
    summaries = []
    for suite in suites:
        counts: dict[str, int] = {}
        for item in suite.items:
            counts[item.task] = counts.get(item.task, 0) + 1
        summaries.append(SuiteSummary(suite.name, counts, dict(suite.skipped),
                                      list(suite.lacking)))
    return AgreementResult(summaries, items, item_suites, good, bad,
                           condition_scores(item_suites, items, good > bad))
