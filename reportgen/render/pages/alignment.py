"""Units and representations across models, on the comparison site.

- On the comparison page: the sorted matched-correlation curve of every pair, the shares of
  matched units above 0.5 and 0.9, how the labelled units (the quote unit, ...) are matched in
  the other models, and the linear CKA matrices across models and across each model's layers.
- `alignment/MODEL-L1-h.html`: every unit of one model's layer and state with its one-to-one
  match and its best match in every other model, each linked to its unit page where the model's
  report has one. A unit page of a comparison site links to its row here, and lists its own
  matches itself (`pages.unit_matches`).
- Exports in `data/`: `alignment.csv` and `similarity.csv`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reportgen.analysis.alignment import THRESHOLDS, UNMATCHED, AlignmentResult, UnitAlignment
from reportgen.analysis.similarity import SimilarityResult
from reportgen.capture.core import StateKey, state_name
from reportgen.charts import matched_correlation_chart, similarity_matrix_chart
from reportgen.csv_safety import neutralise_formulas
from reportgen.render.pages import ChartSpec, Page, page_spec
from reportgen.render.pages.neurons import neuron_page_path
from reportgen.render.pages.unit_matches import alignment_page_path

ALIGNMENT_TABLE = "alignment.csv"
SIMILARITY_TABLE = "similarity.csv"
LABELLED_ROWS = 100  # rows of the labelled-units table on the page; the export has them all

UnitPages = set[tuple[str, StateKey, int]]  # (model, state, unit) whose report has a page


def unit_pages_in(site: Path, models: list[str], keys: list[StateKey],
                  sizes: dict[tuple[str, StateKey], int]) -> UnitPages:
    """The units whose pages exist in the site's model folders, as written before this page."""
    return {(model, key, unit) for model in models for key in keys
            for unit in range(sizes.get((model, key), 0))
            if (site / model / neuron_page_path(key, unit)).is_file()}


def unit_href(pages: UnitPages, model: str, key: StateKey, unit: int, up: str) -> str:
    """The unit's page relative to a page `up` below the site root, or "" without one."""
    return f"{up}{model}/{neuron_page_path(key, unit)}" if (model, key, unit) in pages else ""


def cka_records(similarity: SimilarityResult, keys: list[StateKey]) -> list[dict[str, Any]]:
    """Full squares of CKA across models, one panel per state, 1 on the diagonal."""
    records = []
    for key in keys:
        panel = state_name(key)
        records += [{"panel": panel, "row": m, "column": m, "cka": 1.0, "shuffled": None}
                    for m in similarity.models]
        for s in similarity.across:
            if s.key_a == key:
                records += [{"panel": panel, "row": s.model_a, "column": s.model_b,
                             "cka": finite(s.cka), "shuffled": finite(s.shuffled)},
                            {"panel": panel, "row": s.model_b, "column": s.model_a,
                             "cka": finite(s.cka), "shuffled": finite(s.shuffled)}]
    return records


def layer_records(similarity: SimilarityResult, keys: list[StateKey]) -> list[dict[str, Any]]:
    """Full squares of CKA between the states of each model, one panel per model."""
    records = [{"panel": m, "row": state_name(k), "column": state_name(k), "cka": 1.0,
                "shuffled": None} for m in similarity.models for k in keys]
    for s in similarity.within:
        a, b = state_name(s.key_a), state_name(s.key_b)
        records += [{"panel": s.model_a, "row": row, "column": column, "cka": finite(s.cka),
                     "shuffled": finite(s.shuffled)} for row, column in ((a, b), (b, a))]
    return records


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def charts(alignment: AlignmentResult, similarity: SimilarityResult,
           keys: list[StateKey]) -> list[ChartSpec]:
    names = [state_name(key) for key in keys]
    found = []
    if alignment.pairs:
        found.append(ChartSpec(
            "alignment-curve",
            page_spec(matched_correlation_chart(alignment.curve_records(), names, THRESHOLDS)),
            "For each pair of models, the |r| of every one-to-one match of their units (Hungarian "
            "algorithm on |r| over the sampled positions), best first; dashed: "
            + " and ".join(f"{t:g}" for t in THRESHOLDS) + ".",
            "comparison-alignment-curve"))
        found.append(ChartSpec(
            "cka-models",
            page_spec(similarity_matrix_chart(cka_records(similarity, keys), similarity.models,
                                              names, "Debiased linear CKA between models")),
            "Debiased linear CKA of each pair of models on the same layer and state: 1 is the "
            "same representation up to rotation and scale, 0 none shared; the tooltip gives the "
            "baseline with one model's positions shuffled.", "comparison-cka-models"))
    found.append(ChartSpec(
        "cka-layers",
        page_spec(similarity_matrix_chart(layer_records(similarity, keys), names,
                                          similarity.models, "Debiased linear CKA between layers")),
        "Debiased linear CKA between the layers and states of each model; the tooltip gives the "
        "baseline with one state's positions shuffled.", "comparison-cka-layers"))
    return found


def share_rows(alignment: AlignmentResult, similarity: SimilarityResult) -> list[dict[str, Any]]:
    """One row per pair of models and state: mean matched |r|, the shares, CKA."""
    found = {(s.model_a, s.model_b, s.key_a): s for s in similarity.across}
    rows = []
    for pair in alignment.pairs:
        item = found.get((pair.model_a, pair.model_b, pair.key))
        rows.append({"model_a": pair.model_a, "model_b": pair.model_b,
                     "state": state_name(pair.key),
                     "cka": item.cka if item else math.nan,
                     "cka_shuffled": item.shuffled if item else math.nan, **pair.summary()})
    return rows


def labelled_rows(alignment: AlignmentResult, pages: UnitPages) -> list[dict[str, Any]]:
    """Every labelled unit and its one-to-one match in each other model, the units whose
    strongest label is rarest first: a real model has one or two quote units and dozens of
    month units, and the page shows only the first `LABELLED_ROWS`."""
    strongest = [labels[0] for units in alignment.labels.values() for labels in units if labels]
    rarity = {feature: strongest.count(feature) for feature in set(strongest)}
    rows = []
    for model, other, key, units in alignment.directed():
        for unit, labels in enumerate(alignment.labels.get((model, key), ())):
            if not labels:
                continue
            matched = int(units.matched[unit])
            matched_labels = (alignment.unit_labels(other, key, matched)
                              if matched != UNMATCHED else "")
            rows.append({
                "model": model, "state": state_name(key), "unit": unit, "labels": " ".join(labels),
                "href": unit_href(pages, model, key, unit, ""), "other": other,
                "matched": None if matched == UNMATCHED else matched,
                "matched_href": unit_href(pages, other, key, matched, ""),
                "r": float(units.matched_r[unit]), "matched_labels": matched_labels,
                "shared": bool(set(labels) & set(matched_labels.split())),
            })
    return sorted(rows, key=lambda row: rarity[row["labels"].split()[0]])  # stable: page order


def context(alignment: AlignmentResult, similarity: SimilarityResult, keys: list[StateKey],
            pages: UnitPages, n_positions: int) -> dict[str, Any]:
    """What the comparison page's across-model sections show, besides the charts."""
    labelled = labelled_rows(alignment, pages)
    aligned = {(model, key) for model, _, key, _ in alignment.directed()}  # those with a page
    return {
        "n_positions": n_positions,
        "thresholds": THRESHOLDS,
        "pairs": share_rows(alignment, similarity),
        "labelled": labelled[:LABELLED_ROWS],
        "n_labelled": len(labelled),
        "alignment_pages": [{"model": m, "links": [
            {"state": state_name(k), "href": alignment_page_path(m, k)} for k in keys
            if (m, k) in aligned]} for m in alignment.models],
        "alignment_table": ALIGNMENT_TABLE,
        "similarity_table": SIMILARITY_TABLE,
    }


def alignment_pages(alignment: AlignmentResult, keys: list[StateKey], pages: UnitPages,
                    title: str) -> list[Page]:
    """One page per model and state: each unit's matches in every other model."""
    found = []
    for model in alignment.models:
        for key in keys:
            others = [(other, units) for m, other, k, units in alignment.directed()
                      if m == model and k == key]
            if not others:
                continue
            rows = [{
                "unit": unit, "href": unit_href(pages, model, key, unit, "../"),
                "labels": alignment.unit_labels(model, key, unit),
                "matches": [match_cells(pages, other, key, units, unit) for other, units in others],
            } for unit in range(len(others[0][1].matched))]
            found.append(Page(alignment_page_path(model, key), "alignment.html",
                              f"{model} {state_name(key)} across models", "comparison", {
                                  "title": title, "model": model, "state": state_name(key),
                                  "others": [other for other, _ in others], "rows": rows,
                              }))
    return found


def match_cells(pages: UnitPages, other: str, key: StateKey, units: UnitAlignment,
                unit: int) -> dict[str, Any]:
    matched, best = int(units.matched[unit]), int(units.best[unit])
    return {
        "matched": None if matched == UNMATCHED else matched,
        "matched_r": float(units.matched_r[unit]),
        "matched_href": unit_href(pages, other, key, matched, "../"),
        "best": best, "best_r": float(units.best_r[unit]),
        "best_href": unit_href(pages, other, key, best, "../"),
    }


def export(alignment: AlignmentResult, similarity: SimilarityResult, data: Path) -> None:
    """alignment.csv (one row per ordered model pair, state and unit) and similarity.csv (one
    row per pair of models and state, then per pair of states of each model)."""
    neutralise_formulas(alignment.units_frame()).to_csv(data / ALIGNMENT_TABLE, index=False,
                                                        float_format="%.6g")
    neutralise_formulas(similarity.frame()).to_csv(data / SIMILARITY_TABLE, index=False,
                                                   float_format="%.6g")
