"""The expectancy section: the text as a heatmap of p(word), in pages when long."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reportgen.analysis.bundle import ModelReport
from reportgen.csv_safety import GZIP_SAME_BYTES, neutralise_formulas
from reportgen.render.heatmap import (
    colour_shares,
    expectancy_cells,
    expectancy_legend,
    expectancy_tips,
    most_surprising,
    page_bounds,
    token_probabilities,
)
from reportgen.render.pages import Page, Section, SiteOptions


def section(report: ModelReport) -> Section:
    return Section("expectancy", "Expectancy", "expectancy.html",
                   "The text coloured by how strongly the model expected each word.")


TOKENS_FILE = "tokens.csv.gz"


def shown_tokens(n_tokens: int, options: SiteOptions) -> int:
    """How many of the text's first tokens the pages show: every token costs about 100 bytes
    of page, so a long text is cut at `options.expectancy_tokens` (tokens.csv.gz keeps them all)."""
    if options.expectancy_tokens is None:
        return n_tokens
    return min(n_tokens, options.expectancy_tokens)


def page_names(n_pages: int) -> list[str]:
    return ["expectancy.html"] + [f"expectancy-{i}.html" for i in range(2, n_pages + 1)]


def pages(report: ModelReport, options: SiteOptions) -> list[Page]:
    shown = shown_tokens(report.capture.n_tokens, options)
    bounds = page_bounds(shown, options.tokens_per_page)
    names = page_names(len(bounds))
    links = [{"href": name, "label": str(i)} for i, name in enumerate(names, start=1)]
    surprising = most_surprising(report.capture, names, options.tokens_per_page, shown)
    shares = colour_shares(token_probabilities(report.capture), options.expectancy_scale)
    return [
        Page(
            path=name,
            template="expectancy.html",
            title="Expectancy",
            section="expectancy",
            context={
                "cells": expectancy_cells(report.capture, start, stop, options.expectancy_scale,
                                          titles=False),
                "tips": expectancy_tips(report.capture, start, stop),
                "anchors": {s.position for s in surprising if start <= s.position < stop},
                "pages": links,
                "current": index,
                "start": start,
                "stop": stop,
                "tokens_per_page": options.tokens_per_page,
                "shown_tokens": shown,
                "n_tokens": report.capture.n_tokens,
                "scale_legend": expectancy_legend(options.expectancy_scale),
                "scale": options.expectancy_scale,
                "largest_colour_share": float(shares.max()),
                "surprising": surprising if index == 0 else [],
            },
        )
        for index, (name, (start, stop)) in enumerate(zip(names, bounds))
    ]


def tokens_frame(report: ModelReport) -> pd.DataFrame:
    """tokens.csv.gz: each position, its token, the next one, p(next) and the token features."""
    capture = report.capture
    frame = pd.DataFrame({
        "position": np.arange(capture.n_tokens),
        "token": capture.tokens,
        "next_token": capture.tokens[1:] + [""],
        "prob_next": np.exp(capture.log_prob_next.astype(np.float64)),
    })
    if report.features is not None:
        features = report.features.to_frame().reset_index(drop=True)
        frame = pd.concat([frame, features.astype(int)], axis=1)
    return frame


def export(report: ModelReport, data: Path) -> None:
    """Gzipped, since one row per token made it most of a report (14 MB of WikiText-2's test
    split, against 1.6 MB packed); mtime 0 keeps the bytes the same from run to run."""
    neutralise_formulas(tokens_frame(report)).to_csv(
        data / TOKENS_FILE, index=False, float_format="%.6g",
        compression=GZIP_SAME_BYTES)
