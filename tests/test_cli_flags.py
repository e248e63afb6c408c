"""The overview's notes tell the reader which flag changes what was paged or sampled; every flag
they name must exist on `reportgen demo` as on `reportgen report`."""

import inspect
import re

from reportgen.cli.main import build_parser
from reportgen.render.pages.overview import layout_notes
from reportgen.runs.report import sampling_notes, unit_effects


def flags_named_by_the_notes() -> set[str]:
    source = (inspect.getsource(layout_notes) + inspect.getsource(sampling_notes)
              + inspect.getsource(unit_effects))
    return set(re.findall(r"--[a-z][a-z-]+", source))


def subcommand_flags(name: str) -> set[str]:
    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    return {flag for action in commands.choices[name]._actions for flag in action.option_strings}


def test_every_flag_the_notes_name_is_an_option_of_demo_and_report():
    named = flags_named_by_the_notes()
    assert {"--top-neurons", "--tokens-per-page", "--max-points", "--ablation-tokens"} <= named
    assert named <= subcommand_flags("demo") and named <= subcommand_flags("report")


def test_maps_names_read_back_as_layer_and_state():
    args = build_parser().parse_args(["report", "m.pt", "--out", "o", "--maps", "L2-c", "L10-h"])
    assert args.maps == [(2, "c"), (10, "h")]


def test_demo_takes_the_layout_options():
    args = build_parser().parse_args(["demo", "--top-neurons", "3", "--tokens-per-page", "50",
                                      "--max-points", "100"])
    assert (args.top_neurons, args.tokens_per_page, args.max_points) == (3, 50, 100)
