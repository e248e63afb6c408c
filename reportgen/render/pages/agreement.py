"""The Agreement section: `agreement.html`, accuracy per suite, task and condition with its
Wilson interval against chance, and the number units found by ablation on the noun-PP
template (reportgen.analysis.agreement and number_units).

Exports `agreement.csv` (one row per suite, task and condition), `agreement_items.csv.gz`
(every item with both log ps) and `number_units.csv` (every screened unit), all through
csv_safety, since prefixes and words are the user's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reportgen.analysis.agreement import CHANCE, AgreementResult, ConditionScore
from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.number_units import NumberUnitResult, UnitProfile
from reportgen.capture.core import StateKey
from reportgen.charts import (
    agreement_accuracy_chart,
    screen_against_ablation_chart,
    unit_template_chart,
)
from reportgen.csv_safety import GZIP_SAME_BYTES, neutralise_formulas
from reportgen.render.pages import ChartSpec, Page, Section, SiteOptions, page_spec
from reportgen.render.pages.neurons import neuron_page_path

PAGE = "agreement.html"
SHOWN_UNITS = 10  # rows of the number-unit table, by drop


def section(report: ModelReport) -> Section | None:
    if report.agreement is None:
        return None
    return Section("agreement", "Agreement", PAGE,
                   "Subject-verb number agreement across attractors, and the units that "
                   "carry number.")


def unit_name(layer: int, unit: int) -> str:
    return f"L{layer}-h-{unit:04d}"


def score_record(score: ConditionScore) -> dict[str, Any]:
    return {"suite": score.suite, "task": score.task, "condition": score.condition,
            "congruence": score.congruence or "one noun", "n": score.n,
            "correct": score.correct, "accuracy": score.accuracy, "ci_low": score.ci_low,
            "ci_high": score.ci_high, "verdict": score.verdict}


def suite_views(result: AgreementResult) -> list[dict[str, Any]]:
    """Per suite: its counts, its table rows and its chart."""
    views = []
    for index, suite in enumerate(result.suites):
        rows = [score_record(score) for score in result.scores if score.suite == suite.name]
        tasks = list(dict.fromkeys(row["task"] for row in rows))
        chart = None
        if rows:
            chart = ChartSpec(f"accuracy-{index}", page_spec(agreement_accuracy_chart(
                rows, tasks, f"{suite.name}: accuracy and 95% Wilson interval", CHANCE)),
                "Each point is a condition's accuracy, its bar the 95% Wilson interval; the "
                f"dashed line is chance, {CHANCE:g}.", f"agreement-{index}")
        views.append({"name": suite.name, "rows": rows, "chart": chart,
                      "n_items": sum(suite.n_items.values()), "per_task": suite.n_items,
                      "skipped": suite.skipped, "n_skipped": sum(suite.skipped.values()),
                      "lacking": suite.lacking})
    return views


def unit_link(report: ModelReport, key: StateKey, unit: int, profiled: set[str]) -> str | None:
    """The unit's page, else its c and gate profile further down this page, else nothing."""
    if report.paged is not None and report.paged.has_page(key, unit):
        return neuron_page_path(key, unit)
    name = unit_name(key[0], unit)
    return f"#{name}" if name in profiled else None


def profile_view(found: NumberUnitResult, profile: UnitProfile) -> dict[str, Any]:
    records = [{"quantity": name, "position": found.positions[step],
                "condition": found.conditions[c], "value": float(values[c, step])}
               for name, values in profile.values.items()
               for c in range(values.shape[0]) for step in range(values.shape[1])]
    name = unit_name(profile.layer, profile.unit)
    chart = ChartSpec(f"profile-{name}", page_spec(unit_template_chart(
        records, found.positions, found.conditions,
        f"{name}: c and gates along “{found.task}”, mean per condition")),
        "c and the input (i), forget (f) and output (o) gates at each word of the template, "
        "averaged over each condition's items.", f"number-unit-{name}")
    return {"name": name, "chart": chart,
            "verbs": [{"singular": s, "plural": p, "difference": d}
                      for s, p, d in profile.verb_weights]}


def finder_view(report: ModelReport, found: NumberUnitResult,
                options: SiteOptions) -> dict[str, Any]:
    drop, beaten = found.drop, found.controls_beaten
    n_controls = sum(role == "control" for role in found.role)
    top = found.top_by_drop()[:SHOWN_UNITS]
    incongruent = found.incongruent
    profiled = {unit_name(profile.layer, profile.unit) for profile in found.profiles}
    rows = []
    for i in top:
        layer, unit = int(found.layer[i]), int(found.unit[i])
        key = (layer, "h")
        rows.append({
            "name": unit_name(layer, unit), "screen": float(found.screen[i]),
            "deltas": [float(a - b) for a, b in zip(found.zero_accuracy[i], found.baseline)],
            "drop": float(drop[i]),
            "mean_drop": float(found.pooled(found.baseline) - found.pooled(found.mean_accuracy[i])),
            "beaten": int(beaten[i]),
            "href": unit_link(report, key, unit, profiled),
        })
    ablated = [i for i, role in enumerate(found.role) if role]
    screen_chart = ChartSpec("screen", page_spec(screen_against_ablation_chart([
        {"name": unit_name(int(found.layer[i]), int(found.unit[i])), "role": found.role[i],
         "screen": float(found.screen[i]), "drop": float(drop[i])} for i in ablated])),
        "Each ablated unit: what the attribution screen estimated, against what exact "
        "zero-ablation cost.", "number-units-screen")
    return {"task": found.task, "conditions": found.conditions,
            "incongruent": [c for c, flag in zip(found.conditions, incongruent) if flag],
            "baseline": [float(value) for value in found.baseline],
            "n_items": [int(n) for n in found.n_items], "n_units": len(found.unit),
            "n_top": sum(role == "top" for role in found.role), "n_controls": n_controls,
            "spearman": found.spearman, "spearman_accuracy": found.spearman_accuracy,
            "rows": rows, "screen_chart": screen_chart,
            "beats_all": bool(rows) and n_controls > 0 and rows[0]["beaten"] == n_controls,
            "profiles": [profile_view(found, profile) for profile in found.profiles],
            "seed": found.seed}


def pages(report: ModelReport, options: SiteOptions) -> list[Page]:
    result = report.agreement
    assert result is not None
    suites = suite_views(result)
    finder = (finder_view(report, report.number_units, options)
              if report.number_units is not None else None)
    charts = [view["chart"] for view in suites if view["chart"] is not None]
    if finder is not None:
        charts += [finder["screen_chart"], *(view["chart"] for view in finder["profiles"])]
    return [Page(path=PAGE, template="agreement.html", title="Agreement", section="agreement",
                 context={"suites": suites, "finder": finder, "notes": result.notes,
                          "n_items": len(result.items), "chance": CHANCE},
                 charts=charts)]


def export(report: ModelReport, data: Path) -> None:
    result = report.agreement
    assert result is not None
    scores = pd.DataFrame([score_record(score) for score in result.scores],
                          columns=["suite", "task", "condition", "congruence", "n", "correct",
                                   "accuracy", "ci_low", "ci_high", "verdict"])
    neutralise_formulas(scores[["task", "condition", "n", "correct", "accuracy", "ci_low",
                                "ci_high", "suite", "congruence", "verdict"]]).to_csv(
        data / "agreement.csv", index=False)
    items = pd.DataFrame({
        "suite": result.item_suites, "task": [item.task for item in result.items],
        "condition": [item.condition for item in result.items],
        "prefix": [" ".join(item.prefix) for item in result.items],
        "correct": [item.correct for item in result.items],
        "wrong": [item.wrong for item in result.items],
        "log_p_correct": result.log_p_correct, "log_p_wrong": result.log_p_wrong,
        "right": result.right})
    neutralise_formulas(items).to_csv(data / "agreement_items.csv.gz", index=False,
                                      compression=GZIP_SAME_BYTES)
    if report.number_units is not None:
        number_units_frame(report.number_units).to_csv(data / "number_units.csv", index=False)


def number_units_frame(found: NumberUnitResult) -> pd.DataFrame:
    """One row per screened unit: the screen, and for the ablated ones Δ accuracy per
    condition under zero- and mean-ablation and the rank among the random controls."""
    beaten = found.controls_beaten
    n_controls = sum(role == "control" for role in found.role)
    frame = pd.DataFrame({"layer": found.layer, "state": "h", "unit": found.unit,
                          "screen_score": found.screen,
                          "screen_rank": np.argsort(np.argsort(-found.screen, kind="stable")) + 1,
                          "role": found.role})
    for c, condition in enumerate(found.conditions):
        frame[f"delta_{condition}"] = found.zero_accuracy[:, c] - found.baseline[c]
    frame["incongruent_drop"] = found.drop
    frame["incongruent_margin_drop"] = found.margin_drop
    frame["mean_ablation_incongruent_drop"] = (found.pooled(found.baseline)
                                               - found.pooled(found.mean_accuracy))
    frame["controls_beaten"] = np.where(beaten >= 0, beaten, np.nan)
    frame["rank_among_controls"] = np.where(beaten >= 0, n_controls - beaten + 1, np.nan)
    return neutralise_formulas(frame)
