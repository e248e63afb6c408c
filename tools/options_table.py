"""Write docs/options.md from reportgen's argument parser: one table per command and group of
options, each flag with its default and its help text as `reportgen COMMAND --help` prints
them, so that the reference cannot drift from the parser (tests/test_options_table.py fails
when the file and the parser disagree).

    python tools/options_table.py           # rewrite docs/options.md
    python tools/options_table.py --check   # exit 1 when docs/options.md is out of date
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reportgen.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "options.md"
HEADER = """# Options

Every flag of every command, with its default and its help text, as `reportgen COMMAND --help`
prints them. This file is written by `python tools/options_table.py` from the argument parser;
`tests/test_options_table.py` fails when the two disagree, so edit the parser, not this file.
"""


def cell(text: str) -> str:
    """Text for one cell of a Markdown table: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def flag_names(action: argparse.Action) -> str:
    """`--max-tokens N`, `--dropout P [P ...]`, or a positional's metavar."""
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    usage = argparse.HelpFormatter("reportgen")._format_args(
        action, action.dest.upper()) if action.nargs != 0 else ""
    return ", ".join(f"`{name} {usage}`" if usage else f"`{name}`"
                     for name in action.option_strings)


def default_text(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default is None or action.default is argparse.SUPPRESS:
        return ""
    if isinstance(action.default, (list, tuple)):
        return ", ".join(f"`{value}`" for value in action.default)
    return f"`{action.default}`"


def help_text(action: argparse.Action) -> str:
    """The help as --help prints it, with %(default)s and the like filled in."""
    return argparse.HelpFormatter("reportgen")._expand_help(action)


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def all_commands(parsers: dict[str, argparse.ArgumentParser], prefix: str = ""
                 ) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command and subcommand (`cache list`), in the parser's order."""
    found = []
    for name, parser in parsers.items():
        found.append((prefix + name, parser))
        found += all_commands(command_parsers(parser), f"{prefix}{name} ")
    return found


def command_tables(name: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## reportgen {name}", "", cell(parser.description or ""), ""]
    for group in parser._action_groups:
        actions = [action for action in group._group_actions
                   if action.help is not argparse.SUPPRESS
                   and not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))]
        if not actions:
            continue
        lines += [f"### {group.title}", ""]
        if group.description:
            lines += [cell(group.description), ""]
        lines += ["| option | default | what it does |", "| --- | --- | --- |"]
        lines += [f"| {flag_names(action)} | {default_text(action)} | {cell(help_text(action))} |"
                  for action in actions]
        lines.append("")
    return lines


@contextmanager
def any_machine() -> Iterator[None]:
    """Defaults read from the environment (the capture cache's folder) as a user's machine
    without REPORTGEN_CACHE gives them, with the home folder written `~`."""
    saved = dict(os.environ)
    os.environ.pop("REPORTGEN_CACHE", None)
    os.environ["XDG_CACHE_HOME"] = "~/.cache"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def options_markdown() -> str:
    """docs/options.md as the current parser gives it."""
    with any_machine():
        parser = build_parser()
    lines = [HEADER]
    for name, command in all_commands(command_parsers(parser)):
        lines += command_tables(name, command)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    wanted = options_markdown()
    if argv == ["--check"]:
        if TARGET.read_text(encoding="utf-8") != wanted:
            print(f"{TARGET} is out of date: run python tools/options_table.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
