"""A unit page's number-agreement part: for a unit the number-unit finder ablated among its
top units, its accuracy per condition under zero- and mean-ablation against the intact model,
and a link to its c and gates along the template on the Agreement page
(reportgen.analysis.number_units)."""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen.analysis.bundle import ModelReport
from reportgen.capture.core import StateKey


def unit_number(report: ModelReport, key: StateKey, unit: int) -> dict[str, Any] | None:
    """The number-unit section of `key`'s unit `unit`, or None when it was not a top unit."""
    found = report.number_units
    if found is None or key[1] != "h":
        return None
    rows = np.flatnonzero((found.layer == key[0]) & (found.unit == unit))
    if not rows.size or found.role[rows[0]] != "top":
        return None
    i = int(rows[0])
    profiled = any(p.layer == key[0] and p.unit == unit for p in found.profiles)
    return {
        "task": found.task,
        "conditions": [{"condition": condition, "n": int(found.n_items[c]),
                        "intact": float(found.baseline[c]),
                        "zero": float(found.zero_accuracy[i, c]),
                        "mean": float(found.mean_accuracy[i, c])}
                       for c, condition in enumerate(found.conditions)],
        "drop": float(found.drop[i]),
        "beaten": int(found.controls_beaten[i]),
        "n_controls": sum(role == "control" for role in found.role),
        "anchor": f"L{key[0]}-h-{unit:04d}" if profiled else "number-units",
    }
