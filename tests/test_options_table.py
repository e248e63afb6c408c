"""docs/options.md is the argument parser's: `tools/options_table.py` writes it, and this fails
when a flag, a default or a help text of the parser differs from the file."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def options_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("options_table",
                                                  ROOT / "tools" / "options_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_options_md_is_the_parsers() -> None:
    written = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert written == options_tool().options_markdown(), (
        "docs/options.md is out of date: run python tools/options_table.py")


def test_every_flag_of_every_command_is_in_the_table() -> None:
    tool = options_tool()
    text = tool.options_markdown()
    for name, parser in tool.command_parsers(tool.build_parser()).items():
        assert f"## reportgen {name}" in text
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text, (name, flag)


@pytest.mark.parametrize("change", ["default", "help", "flag"])
def test_a_changed_parser_no_longer_matches(monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    tool = options_tool()
    original = tool.build_parser

    def changed() -> argparse.ArgumentParser:
        parser = original()
        report = tool.command_parsers(parser)["report"]
        action = next(a for a in report._actions
                      if "--top-neurons" in a.option_strings)
        if change == "default":
            action.default = 21
        elif change == "help":
            action.help = "neuron pages per layer and state"
        else:
            report.add_argument("--a-new-flag", action="store_true", help="new")
        return parser

    monkeypatch.setattr(tool, "build_parser", changed)
    assert tool.options_markdown() != (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
