"""The one rule for numbers that reach a chart's data: JSON has no NaN, so they become null.

A leaf of its own, so that analyses that shape chart records and pages that do import it from
the chart stage without reaching anywhere else.
"""

from __future__ import annotations

import math


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: chart data carries null instead."""
    return None if value is None or not math.isfinite(value) else float(value)
