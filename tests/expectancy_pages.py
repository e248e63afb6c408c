"""Read an expectancy page back as a reader sees it: each word's position, text, colour and
tooltip.

The page writes each word as a bare coloured span and its tooltip as one row of the page's
`tips` table (`heatmap.expectancy_tips`), which report.js turns into text. `tip_text` is an
independent reading of that table, written from its documented format; the unit tests compare
it with `heatmap.expectancy_title`, and the browser tests compare it with what report.js shows.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

BOX = re.compile(r'<div class="heatmap" data-tips data-tip-rows="([^"]+)" data-start="(\d+)"'
                 r'[^>]*>(.*?)</div>', re.S)
SPAN = re.compile(r'<span(?: class="(dark)")? style="background:([^"]+)"(?: id="t(\d+)")?>'
                  r'([^<]*)</span>')


@dataclass(frozen=True)
class Word:
    position: int
    text: str  # as shown: an <eos> shows as ⏎
    colour: str
    dark: bool
    anchored: bool  # has the id="t{position}" that the surprising-token links go to
    tip: str


def tip_table(source: str, table_id: str) -> dict:
    found = re.search(rf'<script type="application/json" id="{re.escape(table_id)}">(.*?)</script>',
                      source, re.S)
    assert found, table_id
    return json.loads(found.group(1))


def shown_probability(prob: float) -> str:
    return f"{prob:.4f}" if prob >= 0.001 else f"{prob:.1e}"


def tip_text(table: dict, row: list) -> str:
    """`word: p = 0.0160\\nexpected: the 0.129, ...`, or the first token's note."""
    words = table["words"]
    if len(row) == 1:
        return f"{words[row[0]]}: first token, not predicted"
    guesses = ", ".join(f"{words[word]} {per_mille / 1000:.3f}"
                        for word, per_mille in zip(row[2::2], row[3::2]))
    return f"{words[row[0]]}: p = {shown_probability(row[1])}\nexpected: {guesses}"


def page_words(page: Path) -> list[Word]:
    source = page.read_text(encoding="utf-8")
    box = BOX.search(source)
    assert box, page
    table = tip_table(source, box.group(1))
    start = int(box.group(2))
    spans = SPAN.findall(box.group(3))
    assert len(spans) == len(table["rows"]), page
    return [Word(start + index, html.unescape(text), colour, dark == "dark", anchor != "",
                 tip_text(table, row))
            for index, ((dark, colour, anchor, text), row) in enumerate(zip(spans, table["rows"]))]


def site_words(site: Path) -> list[Word]:
    """Every expectancy page's words, in the order of the text."""
    pages = sorted(site.glob("expectancy*.html"),
                   key=lambda page: int(page.stem.partition("-")[2] or 1))
    return [word for page in pages for word in page_words(page)]
