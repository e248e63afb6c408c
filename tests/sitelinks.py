"""Every link of a written report, read from its files without a browser: each `href` and `src`
of each page, and each `href` in the data of its charts (the pages a click on a mark opens),
resolved against the page and checked to name a file of the site, and, with a `#fragment`, an
element of that page with that id.

The browser tests check the links a browser sees on the pages it opens; this walk needs no
browser, so it also runs where chromium is missing, and on a real model's report of thousands of
pages in seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from browsertools import site_pages, spec_hrefs


class PageLinks(HTMLParser):
    """The links, ids and inline JSON of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.json: list[str] = []
        self.in_json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.links += [value for name, value in attrs if name in ("href", "src") and value]
        if found.get("id"):
            self.ids.add(str(found["id"]))
        self.in_json = tag == "script" and found.get("type") == "application/json"

    def handle_endtag(self, tag: str) -> None:
        self.in_json = False

    def handle_data(self, data: str) -> None:
        if self.in_json:
            self.json.append(data)


@dataclass(frozen=True)
class BrokenLink:
    page: str  # relative to the site's root
    link: str  # as the page writes it
    why: str


def read_page(path: Path) -> PageLinks:
    parser = PageLinks()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def page_links(path: Path) -> list[str]:
    """The page's own links, then those of its charts' data."""
    parsed = read_page(path)
    links = list(parsed.links)
    for text in parsed.json:
        links += spec_hrefs(json.loads(text))
    return links


def broken_links(root: Path) -> list[BrokenLink]:
    """Every link of every page of the site at `root` that names no file of the site or no
    element of its page; links with a scheme (https:, mailto:) are not the site's."""
    root = root.resolve()
    ids: dict[Path, set[str]] = {}
    broken = []
    for relative in site_pages(root):
        page = root / relative
        for link in page_links(page):
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_relative_to(root):
                broken.append(BrokenLink(relative, link, "leaves the site"))
            elif not target.is_file():
                broken.append(BrokenLink(relative, link, "no such file"))
            elif parts.fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = read_page(target).ids
                if unquote(parts.fragment) not in ids[target]:
                    broken.append(BrokenLink(relative, link, "no element with that id"))
    return broken
